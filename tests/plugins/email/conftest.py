"""The email tests' fixtures and helpers live in email_testing (a unique module name, see the amoCRM tests)."""

import email_testing

globals().update({name: value for name, value in vars(email_testing).items() if not name.startswith("__")})
