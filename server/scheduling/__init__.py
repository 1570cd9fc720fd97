"""Scheduled posts: REST, rules, the cluster-wide scheduler and the publishing pipeline."""
