"""Event payload models, one module per topic family; importing this package registers them all
in ``schemas.registry.REGISTRY``.
"""

from schemas.events import certificates, issuance, municipalities, residents

__all__ = ["certificates", "issuance", "municipalities", "residents"]
