"""The end-to-end suite (`make e2e`): the stacks' services run as their rendered Deployments run them."""
