"""The ``sibiao`` command: parses, calls one function of a lower floor, prints."""
