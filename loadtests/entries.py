"""What the scenarios store: shared by the Locust users and the runner (which must not import Locust:
it patches the standard library with gevent on import)."""

# Keys `load-0` .. `load-<KEYS - 1>` are written before the scenarios run.
KEYS = 1000
# A typical L1 entry: a few sentences of conversation context.
VALUE = "Board prep: Q3 revenue up 12%, churn flat; Acme renewal at risk, call Dana before Friday. " * 3
TTL_SECONDS = 300
