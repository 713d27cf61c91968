"""The config file and flags: parsing and validation of ``[settings]``, ``[modules]``,
``[[targets]]``, ``[[push]]`` and ``[web]``, durations, credentials and secret sources."""
