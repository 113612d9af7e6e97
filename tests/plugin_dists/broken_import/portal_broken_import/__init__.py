"""A plugin whose import fails: the host must list it and carry on."""
raise RuntimeError("this plugin cannot be imported")
