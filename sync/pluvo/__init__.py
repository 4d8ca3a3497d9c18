"""The Pluvo GraphQL client: operations as data (`ops`), and the client that sends them."""

from sync.pluvo.client import ClientCounters, PluvoClient
from sync.pluvo.ops import Call, Enum
from sync.pluvo.results import CallResult

__all__ = ["Call", "CallResult", "ClientCounters", "Enum", "PluvoClient"]
