"""fedxnor.boards."""
