"""Load the resclaims pytest plugin for every test under this directory."""

pytest_plugins = ("resclaims.plugin",)
