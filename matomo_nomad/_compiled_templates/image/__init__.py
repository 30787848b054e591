"""matomo_nomad/templates/image/*.tpl compiled to Python by _templates.py: do not edit."""
