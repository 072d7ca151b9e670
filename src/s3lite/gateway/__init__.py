"""The HTTP front door: S3's REST API (routing, SigV4 auth and keys, XML, handlers by
family of operations) and the admin API, over the receiver's object API."""

from .app import GatewayApp

__all__ = ["GatewayApp"]
