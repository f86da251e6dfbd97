"""Load tests (`make load`): L1 memory through the orchestrator of a stack run here."""
