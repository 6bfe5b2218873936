"""Fees and settlement: what each municipality collected and owes, from the log alone."""
