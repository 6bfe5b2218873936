"""JPKI electronic certificates: lifecycle projection, automatic revocation and validity checks."""
