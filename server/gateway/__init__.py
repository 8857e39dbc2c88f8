"""The HTTP/JSON gateway, derived from the contract's `google.api.http` rules."""

from server.gateway.app import create_gateway_app
from server.gateway.serving import GatewayServer

__all__ = ["GatewayServer", "create_gateway_app"]
