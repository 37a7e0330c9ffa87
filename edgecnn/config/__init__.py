"""Export recipes and device profiles: YAML files, validated on load."""
