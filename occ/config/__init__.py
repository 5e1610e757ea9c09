"""The configuration: the frozen model, its parser, and the OpenCode presets. Sans-IO."""
