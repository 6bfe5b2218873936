"""Event payload models, one module per topic family; importing this package registers them all
in ``schemas.registry.REGISTRY``.
"""

from schemas.events import certificates, disaster, issuance, municipalities, residents

__all__ = ["certificates", "disaster", "issuance", "municipalities", "residents"]
