"""fedxnor.export."""
