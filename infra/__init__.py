"""Embedded services, SQL migrations and the two-center topology the pipeline runs on."""
