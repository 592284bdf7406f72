"""fedxnor.fedxnor."""
