"""Pure functions over convoy's lock file: parse, check, choose, plan repositories.

Everything here is a function of plain values (strings, dicts), so the
WORKSPACE repository rule, the bzlmod module extension and the Starlark unit
tests all call the same code. Failures go through an injectable `_fail`
(default `fail`); a test passes `errors.append` and checks the messages. A
function returns None right after reporting a failure.

    load("//rules/private:lock.bzl", "lock")

    data = lock.parse(ctx.read(lock_path), "manifests/manifest.lock.json")
    lock.check_fresh(data, manifest_sha256, "manifests/manifest.lock.json")
    configuration = lock.choose_configuration(data, requested)
    repos = lock.component_repositories(data, configuration, root)
"""

FORMAT_VERSION = 1

# The component sources a lock can pin, and the attributes each must carry.
_SOURCE_KEYS = {
    "archive": ["url", "sha256"],
    "git": ["remote", "commit"],
    "local": ["path"],
}

_FIX = "Run: convoy lock"

# What a lock may name: git's transports (GIT_ALLOW_PROTOCOL) and the
# schemes of an archive url. A remote is one of these URLs, an absolute path
# or scp-like user@host:path; never an option, nor a `<transport>::` helper
# (ext:: and fd:: run commands). See tools/driver/convoy/untrusted.py.
REMOTE_SCHEMES = ["https", "http", "ssh", "git", "file"]
ARCHIVE_SCHEMES = ["https", "http", "file"]
_SCHEME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"

def _is_hex(s, length):
    if len(s) != length:
        return False
    for c in s.elems():
        if c not in "0123456789abcdef":
            return False
    return True

def _has_control_characters(s):
    for c in s.elems():
        if c < " " or c == "\177":
            return True
    return False

def _scheme_before(s, separator):
    """The lowercased name before `separator` if s starts with `<name><separator>`, else None."""
    index = s.find(separator)
    if index < 1 or not s[0].isalpha():
        return None
    for c in s[:index].elems():
        if c not in _SCHEME_CHARS:
            return None
    return s[:index].lower()

def _remote_problem(remote):
    """Why git must not fetch from `remote`, or None.

    Args:
      remote: a git remote from the lock.

    Returns:
      A short reason (e.g. "starts with '-' ..."), or None when it is acceptable.
    """
    if remote.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if _has_control_characters(remote):
        return "contains control characters"
    scheme = _scheme_before(remote, "://")
    if scheme != None:
        rest = remote[len(scheme) + 3:]
        if scheme not in REMOTE_SCHEMES:
            return "uses the scheme '%s://' (allowed: %s)" % (scheme, ", ".join([s + "://" for s in REMOTE_SCHEMES]))
        if scheme == "file":
            return None if rest.startswith("/") else "is a file:// URL without an absolute path"
        host = rest.partition("/")[0].rpartition("@")
        if not host[2] or host[0].startswith("-") or host[2].startswith("-"):
            return "has no host, or a user or host starting with '-'"
        return None
    helper = _scheme_before(remote, "::")
    if helper != None:
        return "uses a git remote helper ('%s::'), which can run commands" % helper
    if remote.startswith("/"):
        return None
    host, colon, path = remote.partition(":")
    if colon and host and "/" not in host and path and not path.startswith("-"):
        return None  # scp-like [user@]host:path
    return "is neither a URL (https://, ssh://, git://, file://), scp-like user@host:path, nor an absolute path"

def _url_problem(url):
    """Why an archive must not be downloaded from `url`, or None.

    Args:
      url: an archive url from the lock.

    Returns:
      A short reason, or None when it is acceptable.
    """
    if _has_control_characters(url) or " " in url:
        return "contains control characters or spaces"
    scheme = _scheme_before(url, "://")
    if scheme not in ARCHIVE_SCHEMES:
        return "must start with %s" % ", ".join([s + "://" for s in ARCHIVE_SCHEMES])
    rest = url[len(scheme) + 3:]
    if scheme == "file" and "/" not in rest:
        return "is a file:// URL without an absolute path"
    if scheme != "file" and (not rest or rest.startswith("/")):
        return "has no host"
    return None

def _path_problem(path):
    """Why a local component's `path` leaves the integration repository, or None.

    Args:
      path: the path from the lock, relative to the integration repository.

    Returns:
      A short reason, or None when the path stays inside the repository.
    """
    if _has_control_characters(path):
        return "contains control characters"
    if path.startswith("/"):
        return "is absolute (it must be relative to the integration repository)"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            return "leaves the integration repository ('..')"
    return None

def _is_commit(s):
    """Whether s is a full commit id (40 lowercase hex digits)."""
    return _is_hex(s, 40)

def _parse(content, lock_path, _fail = fail):
    """Decodes and validates the text of a lock file.

    Args:
      content: the text of manifests/manifest.lock.json.
      lock_path: its path, for messages.
      _fail: called with the message when the lock is unusable.

    Returns:
      The decoded lock as a dict, or None after a failure.
    """
    if "\n<<<<<<< " in "\n" + content or "\n>>>>>>> " in content:
        _fail("%s has git conflict markers; do not merge it by hand. %s" % (lock_path, _FIX))
        return None
    if not content.strip().startswith("{"):
        _fail("%s is not a JSON object (it starts with %r). %s" % (lock_path, content.strip()[:20], _FIX))
        return None

    # Bazel 4.2's json.decode has no default= and fails the build on bad JSON;
    # the checks above catch the broken files a person can produce.
    data = json.decode(content)
    if type(data) != "dict":
        _fail("%s is not a JSON object. %s" % (lock_path, _FIX))
        return None
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        _fail("%s has format_version %r; this convoy reads %d. %s" % (lock_path, version, FORMAT_VERSION, _FIX))
        return None
    for key, kind in [
        ("components", "list"),
        ("configurations", "dict"),
        ("default_configuration", "string"),
        ("manifest_sha256", "string"),
    ]:
        if type(data.get(key)) != kind:
            _fail("%s: '%s' is missing or not a %s. %s" % (lock_path, key, kind, _FIX))
            return None
    if not data["configurations"]:
        _fail("%s has no configurations. %s" % (lock_path, _FIX))
        return None
    for configuration, body in data["configurations"].items():
        if type(body) != "dict" or type(body.get("components")) != "dict":
            _fail("%s: configuration '%s' has no 'components' object. %s" % (lock_path, configuration, _FIX))
            return None
        for name, pin in body["components"].items():
            if not _check_pin(pin, "%s: %s/%s" % (lock_path, configuration, name), _fail):
                return None
            if name not in data["components"]:
                _fail("%s: %s/%s is not in the list of components. %s" % (lock_path, configuration, name, _FIX))
                return None
    return data

def _check_pin(pin, where, _fail):
    if type(pin) != "dict":
        _fail("%s is not an object. %s" % (where, _FIX))
        return False
    source = pin.get("source")
    if source not in _SOURCE_KEYS:
        _fail("%s has source %r; expected one of %s. %s" % (where, source, ", ".join(sorted(_SOURCE_KEYS)), _FIX))
        return False
    for key in ["version"] + _SOURCE_KEYS[source]:
        if type(pin.get(key)) != "string" or not pin[key]:
            _fail("%s (%s) has no '%s'. %s" % (where, source, key, _FIX))
            return False
    if source == "git" and not _is_hex(pin["commit"], 40):
        _fail("%s: commit %r is not 40 lowercase hex digits. %s" % (where, pin["commit"], _FIX))
        return False
    if source == "archive" and not _is_hex(pin["sha256"], 64):
        _fail("%s: sha256 %r is not 64 lowercase hex digits. %s" % (where, pin["sha256"], _FIX))
        return False
    key, problem_of = {
        "archive": ("url", _url_problem),
        "git": ("remote", _remote_problem),
        "local": ("path", _path_problem),
    }[source]
    problem = problem_of(pin[key])
    if problem:
        _fail("%s: %s %r %s. %s" % (where, key, pin[key], problem, _FIX))
        return False
    return True

def _check_fresh(data, manifest_sha256, lock_path, _fail = fail):
    """Fails when the lock was made from another version of the manifest.

    Args:
      data: the lock, as returned by parse().
      manifest_sha256: sha256 (hex) of manifests/manifest.yaml as it is now.
      lock_path: the lock's path, for the message.
      _fail: called with the message when the lock is stale.

    Returns:
      True when the lock is fresh, else False after a failure.
    """
    locked = data["manifest_sha256"]
    if locked != manifest_sha256:
        _fail("%s is stale (manifest sha256 %s.. != %s..): the manifest changed since it was locked. %s" % (
            lock_path,
            locked[:8],
            manifest_sha256[:8],
            _FIX,
        ))
        return False
    return True

def _choose_configuration(data, requested, _fail = fail):
    """Picks the active configuration: the requested one, else the default.

    Args:
      data: the lock, as returned by parse().
      requested: the value of CONVOY_CONFIGURATION (None or "" for the default).
      _fail: called with the message for an unknown configuration.

    Returns:
      The configuration's name, or None after a failure.
    """
    name = requested or data["default_configuration"]
    if name not in data["configurations"]:
        origin = "CONVOY_CONFIGURATION=%s" % name if requested else "default_configuration '%s'" % name
        _fail("%s names no configuration of the manifest; known: %s. Use --repo_env=CONVOY_CONFIGURATION=<one of them>" % (
            origin,
            ", ".join(sorted(data["configurations"])),
        ))
        return None
    return name

def _component_repositories(data, configuration, root):
    """Attributes of the repository of every component for one configuration.

    Every component of the manifest gets a repository, so that labels and
    `use_repo` stay the same across configurations; a component outside the
    configuration gets an empty one (source "absent").

    Args:
      data: the lock, as returned by parse().
      configuration: the active configuration's name.
      root: absolute path of the integration repository (for local paths).

    Returns:
      A dict: repository name -> dict of convoy_component attributes.
    """
    pins = data["configurations"][configuration]["components"]
    repos = {}
    for name in data["components"]:
        pin = pins.get(name)
        attrs = {"component": name, "configuration": configuration}
        if pin == None:
            attrs["source"] = "absent"
        else:
            attrs["source"] = pin["source"]
            attrs["version"] = pin["version"]
            for key in _SOURCE_KEYS[pin["source"]] + ["strip_prefix"]:
                if key in pin:
                    attrs[key] = pin[key]
            if pin["source"] == "local":  # parse() keeps it inside the repository
                attrs["path"] = root + "/" + pin["path"]
        repos[name] = attrs
    return repos

def _pin_of(pin):
    """The immutable pin of a locked component: commit, sha256 or path."""
    return pin.get("commit") or pin.get("sha256") or pin.get("path")

def _hub_files(data, configuration, hardware_remote):
    """The files of the @convoy_manifest hub repository.

    Args:
      data: the lock, as returned by parse().
      configuration: the active configuration's name.
      hardware_remote: whether hardware tests go to a remote executor.

    Returns:
      A dict: file name -> content.
    """
    pins = data["configurations"][configuration]["components"]
    components = {
        name: {"pin": _pin_of(pin), "source": pin["source"], "version": pin["version"]}
        for name, pin in pins.items()
    }
    defs = "\n".join([
        '"""The pinned manifest as seen by this build. Generated by convoy; do not edit."""',
        "",
        "# The active configuration (--repo_env=CONVOY_CONFIGURATION, default: the manifest's).",
        "CONFIGURATION = %r" % configuration,
        "",
        "# Every configuration of the manifest.",
        "CONFIGURATIONS = %r" % sorted(data["configurations"]),
        "",
        "# The components of the active configuration: name -> {source, version, pin}.",
        "COMPONENTS = %s" % json.encode_indent(components, indent = "    "),
        "",
        "# Whether hardware tests run on remote rig pools (--repo_env=CONVOY_HARDWARE_REMOTE=1).",
        "HARDWARE_REMOTE = %s" % hardware_remote,
        "",
        "# sha256 of the manifest that the lock was made from.",
        "MANIFEST_SHA256 = %r" % data["manifest_sha256"],
        "",
    ])
    build = "\n".join([
        "# Generated by convoy; do not edit.",
        'package(default_visibility = ["//visibility:public"])',
        "",
        'exports_files(["configuration.json", "defs.bzl"])',
        "",
    ])
    configuration_json = json.encode_indent(
        {"components": components, "configuration": configuration},
        indent = "  ",
    ) + "\n"
    return {
        "BUILD.bazel": build,
        "configuration.json": configuration_json,
        "defs.bzl": defs,
    }

def _repositories_bzl(repos, rule_bzl):
    """A .bzl with a macro that declares the component repositories (WORKSPACE).

    Args:
      repos: as returned by component_repositories().
      rule_bzl: the label, as a string, of the .bzl defining convoy_component.

    Returns:
      The text of repositories.bzl.
    """
    lines = [
        '"""Component repositories of the active configuration. Generated by convoy; do not edit."""',
        "",
        'load("%s", "convoy_component")' % rule_bzl,
        "",
        "def convoy_component_repositories():",
        '    """Declares @<component> for every component of the manifest."""',
    ]
    for name in sorted(repos):
        lines.append("    convoy_component(")
        lines.append("        name = %r," % name)
        for key in sorted(repos[name]):
            lines.append("        %s = %r," % (key, repos[name][key]))
        lines.append("    )")
    return "\n".join(lines) + "\n"

lock = struct(
    check_fresh = _check_fresh,
    choose_configuration = _choose_configuration,
    component_repositories = _component_repositories,
    hub_files = _hub_files,
    is_commit = _is_commit,
    parse = _parse,
    path_problem = _path_problem,
    remote_problem = _remote_problem,
    url_problem = _url_problem,
    repositories_bzl = _repositories_bzl,
)
