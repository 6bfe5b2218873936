"""Cloud disaster victim support: victim ledger, shelters, applications, damage."""
