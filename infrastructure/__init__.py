"""The Sophia AI Pulumi program: reads the stack's configuration and composes the components."""
