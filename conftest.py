"""Load the resclaims pytest plugin for every test under this directory (and pytester for its own tests)."""

pytest_plugins = ("resclaims.plugin", "resclaims.plugin.engine", "pytester")
