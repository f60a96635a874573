"""The packages: ``hub`` and the built-in plugins.

The built-in plugins live in ``plugins/`` in the repository but install as ``crm_hub_plugins``: a top-level
package named ``plugins`` would collide with any other distribution that made the same choice. Everything else
about the build is in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup

PLUGINS = "crm_hub_plugins"


def found(root: str) -> list[str]:
    # namespace discovery, as pyproject's `packages.find` does: data folders (migrations, templates) are packages
    return [name for name in find_namespace_packages(include=[root, root + ".*"]) if "__pycache__" not in name]


setup(
    packages=found("hub") + [PLUGINS + name[len("plugins") :] for name in found("plugins")],
    package_dir={"": ".", PLUGINS: "plugins"},
)
