"""Entry point that `pulumi up` runs (Pulumi.yaml: `main: infrastructure/`)."""

from infrastructure.program import main

main()
