"""One module per unit of work; each defines a Stage subclass the engine finds by name."""
