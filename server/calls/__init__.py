"""Calls: the CallActor's wiring and adapters, ICE servers and call records over REST."""
