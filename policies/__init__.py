"""The Sophia AI policy pack (`pulumi preview --policy-pack policies`)."""
