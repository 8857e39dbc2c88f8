"""Per-method policy read from the contract's `(exodrive.v1.policy)` options.

Interceptors and the gateway ask this module, so which methods are cached, limited or admin-only
is data in the `.proto` files rather than code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exodrive.v1 import booking_pb2, fleet_pb2, inbox_pb2, options_pb2, webhook_pb2
from google.protobuf import descriptor

SERVICE_FILES = (fleet_pb2, booking_pb2, inbox_pb2, webhook_pb2)


@dataclass(frozen=True)
class MethodInfo:
    full_name: str  # "/exodrive.v1.FleetService/GetCar"
    descriptor: descriptor.MethodDescriptor
    policy: options_pb2.MethodPolicy

    @property
    def access(self) -> options_pb2.Access.ValueType:
        # An unset access fails closed.
        if self.policy.access == options_pb2.ACCESS_UNSPECIFIED:
            return options_pb2.ACCESS_ADMIN
        return self.policy.access


def service_descriptors() -> list[descriptor.ServiceDescriptor]:
    return [svc for module in SERVICE_FILES for svc in module.DESCRIPTOR.services_by_name.values()]


def _methods(services: Iterable[descriptor.ServiceDescriptor]) -> dict[str, MethodInfo]:
    table: dict[str, MethodInfo] = {}
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            policy = options_pb2.MethodPolicy()
            if options.HasExtension(options_pb2.policy):
                policy.CopyFrom(options.Extensions[options_pb2.policy])
            full_name = f"/{service.full_name}/{method.name}"
            table[full_name] = MethodInfo(full_name, method, policy)
    return table


class PolicyTable:
    """The policy of every exodrive.v1 method, keyed by its gRPC path."""

    def __init__(self, services: Iterable[descriptor.ServiceDescriptor] | None = None) -> None:
        self._methods = _methods(service_descriptors() if services is None else services)

    def get(self, full_method: str) -> MethodInfo | None:
        """None for methods outside the contract (health, reflection)."""
        return self._methods.get(full_method)

    def methods(self) -> list[MethodInfo]:
        return list(self._methods.values())
