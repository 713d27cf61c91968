"""The config file and flags: parsing and validation of ``[settings]``, ``[modules]``,
``[[targets]]``, ``[[push]]`` and ``[web]``; durations, TLS options, credentials and secret
sources, each parsed by one function wherever it appears; ``LiveConfig``, the config in force."""
