"""``cep devstack``: Kafka (KRaft), Cassandra, Neo4j and Redis on 127.0.0.1 without Docker.

The JVM servers are assembled from Maven Central (one pom per service under
``scripts/devstack/poms``) into a shared cache and run with ``java -cp``; Redis is Debian's
``redis-server``. See ``stack.DevStack`` for the Python API.
"""

from clients.devstack.errors import DevStackError, ServiceUnavailable
from clients.devstack.services import Endpoint, Ports
from clients.devstack.stack import SERVICE_NAMES, DevStack, ServiceReport

__all__ = [
    "SERVICE_NAMES",
    "DevStack",
    "DevStackError",
    "Endpoint",
    "Ports",
    "ServiceReport",
    "ServiceUnavailable",
]
