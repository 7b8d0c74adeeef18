"""The `emonets` command: its commands (main), console output, errors as one line, progress bars.

It sits above the flows: batch commands start them, interactive ones call the library directly.
"""
