"""Manifests that several test folders edit or parse (tests/manifest, tests/manifest_edit)."""

# A manifest with every source; tests/manifest's cases edit it at the lines they name.
GOOD = """\
schema_version: 1
default_configuration: rover
release:
  tag_format: "v{year}.{month}.{n}"
components:
  messages:
    source: git
    remote: https://git.example.com/robot/messages.git
    version: v1.4.0
  planner:
    source: archive
    url: https://pkg.example.com/planner-{version}.tar.gz
    strip_prefix: planner-{version}
    version: v2.1.0
  controller:
    source: local
    path: components/controller/{version}
    version: v1.2.0
configurations:
  rover:
    components: [messages, planner, controller]
  drone:
    components: [messages, controller]
    pins:
      controller: v1.1.0
"""

# A manifest as a person writes it: comments, quotes, flow style, odd indentation.
OLD = "1a2b3c4d" * 5
NEW = "5e6f7a8b" * 5

ODD = f"""\
# The product manifest, written by hand.
schema_version: 1
default_configuration: rover   # the big one

release: {{tag_format: "v{{year}}.{{month}}.{{n}}"}}

components:
  # the shared library
  messages:
    source: git                # from the git server
    remote: 'https://git.example.com/robot/messages.git'
    version: 'v1.4.0'          # single-quoted
    commit: {OLD}

  planner:   # route planning
    source: archive
    url: "https://pkg.example.com/planner-{{version}}.tar.gz"
    strip_prefix: planner-{{version}}
    sha256: {"a" * 64}
    version: "v2.1.0"          # double-quoted

  controller: {{source: git, remote: https://git.example.com/robot/controller.git, version: v1.2.0}}
  firmware:
      source: git
      remote: https://git.example.com/robot/firmware.git
      version: v3.0.1   # odd indentation
configurations:
  rover:
    components: [messages, planner, controller, firmware]   # everything
  drone: {{components: [messages, controller, firmware], pins: {{firmware: v2.9.4}}}}
  bench:
    components:
      - messages
      - firmware
    # no pins yet
# end
"""
