"""Oracle Trader v2 training side."""
