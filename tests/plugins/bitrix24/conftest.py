"""The bitrix24 tests' fixtures and helpers live in bitrix24_testing.

A unique module name: the plugin test folders have no package, so two files named conftest would shadow each
other when imported by name. Every name, private fixtures included, is re-exported here for pytest.
"""

import bitrix24_testing

globals().update({name: value for name, value in vars(bitrix24_testing).items() if not name.startswith("__")})
