"""Built-in plugins, each registered through the 'hub' entry-point group."""
