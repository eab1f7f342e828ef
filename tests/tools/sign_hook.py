#!/usr/bin/python3
"""tests/tools/sign_hook.py — build, sign and send one forge webhook delivery.

Used by the serve integration tests and bench/webhooks.sh.  Python 3
standard library only (Debian's python3; no pip).

    sign_hook.py --url http://127.0.0.1:PORT/hooks/app --forge github \
                 --secret S [--event push] [--ref main] [--sha SHA] ...

Forges (the headers each really sends, the payloads shaped like their
documentation; only the fields a CI server reads plus the usual context):
    github                    X-GitHub-Event, X-GitHub-Delivery,
                              X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
    gitea                     X-Gitea-Event, X-Gitea-Delivery,
                              X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>
    gitlab-token              X-Gitlab-Event, X-Gitlab-Event-UUID, X-Gitlab-Token: <secret>
    gitlab-standard-webhooks  X-Gitlab-Event, X-Gitlab-Event-UUID, webhook-id,
                              webhook-timestamp, webhook-signature:
                              v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>
                              (key = secret; "whsec_<base64>" = the decoded bytes)

Events: push (a branch), tag, delete (a branch deleted), ping (GitHub's ping;
Gitea's and GitLab's "test delivery": a push without commits), pull_request
(GitLab: a merge request; --action picks opened/closed/... ).  Payloads come
from tests/fixtures/webhooks/<forge>-<event>.json (the forges' documented
payloads), patched with --ref/--sha/--before/--pr; built in here when a
fixture is missing.  A body can also come from --body-file (the delivery id and
signature are still made here), or be --malformed (not JSON; signed).

Faults: --bad-signature (a MAC of other bytes), --no-signature, --wrong-secret,
--oversize N (the JSON padded to N bytes, signed), --chunked (Transfer-Encoding:
chunked, 64 KiB chunks), --content-type CT, --form (GitHub's
application/x-www-form-urlencoded payload=...), --stale (Standard Webhooks
timestamp 10 minutes old), --delivery ID (default: a new UUID).

Output: the HTTP status on the first line, then the answer's body (000 and the
error when the connection failed).  --dump writes the request instead of
sending it: headers as "Name: value" lines, an empty line, the body (what
bench/webhooks.sh precomputes); --body-out FILE writes only the body.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import sys
import time
import urllib.parse
import uuid

ZERO = "0" * 40
FORGES = ("github", "gitea", "gitlab-token", "gitlab-standard-webhooks")
EVENTS = ("push", "tag", "delete", "ping", "pull_request")


def sha_of(seed):
    return hashlib.sha1(seed.encode()).hexdigest()


def repo_block(forge, a):
    owner, name = a.project.split("/", 1)
    if forge == "github":
        return {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": name, "full_name": a.project, "private": False,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
            "html_url": "https://github.com/" + a.project,
            "clone_url": a.clone_url or "https://github.com/%s.git" % a.project,
            "ssh_url": "git@github.com:%s.git" % a.project,
            "default_branch": "main",
        }
    if forge == "gitea":
        return {
            "id": 7, "name": name, "full_name": a.project, "private": False,
            "owner": {"id": 1, "login": owner, "username": owner},
            "html_url": "https://gitea.example.com/" + a.project,
            "clone_url": a.clone_url or "https://gitea.example.com/%s.git" % a.project,
            "ssh_url": "git@gitea.example.com:%s.git" % a.project,
            "default_branch": "main",
        }
    return {  # gitlab "project"
        "id": 15, "name": name, "path_with_namespace": a.project,
        "namespace": owner, "default_branch": "main",
        "web_url": "https://gitlab.example.com/" + a.project,
        "git_http_url": a.clone_url or "https://gitlab.example.com/%s.git" % a.project,
        "git_ssh_url": "git@gitlab.example.com:%s.git" % a.project,
    }


def commit_block(forge, a, sha):
    c = {
        "id": sha,
        "message": a.message + "\n\nmore lines of the message\n",
        "timestamp": "2026-01-02T03:04:05Z",
        "url": "https://forge.example.com/%s/commit/%s" % (a.project, sha),
        "author": {"name": a.author, "email": "dev@example.com"},
    }
    if forge in ("github", "gitea"):
        c["author"]["username"] = a.sender
        c["committer"] = dict(c["author"])
        c["added"], c["removed"], c["modified"] = [], [], ["README.md"]
    else:
        c["title"] = a.message
    return c


def payload(forge, a):
    """The body for forge/event as a dict, and the forge's event name."""
    fam = "gitlab" if forge.startswith("gitlab") else forge
    sha = a.sha or sha_of("after:" + a.ref)
    before = a.before or sha_of("before:" + a.ref)
    ref = a.ref
    ev = a.event
    if ev == "tag" and not ref.startswith("refs/"):
        ref = "refs/tags/" + ref
    elif not ref.startswith("refs/"):
        ref = "refs/heads/" + ref

    if fam in ("github", "gitea"):
        repo = repo_block(fam, a)
        sender = {"login": a.sender, "id": 42}
        if fam == "gitea":
            sender["username"] = a.sender
        if ev in ("push", "tag"):
            commit = commit_block(fam, a, sha)
            body = {
                "ref": ref, "before": before, "after": sha,
                "created": False, "deleted": False, "forced": False,
                "commits": [commit], "head_commit": commit,
                "repository": repo, "pusher": {"name": a.sender, "email": "dev@example.com"},
                "sender": sender,
            }
            if fam == "github":
                body["base_ref"] = None
                body["compare"] = "https://github.com/%s/compare/%s...%s" % (
                    a.project, before[:12], sha[:12])
            else:
                body["compare_url"] = ""
                body["total_commits"] = 1
            return body, "push"
        if ev == "delete":
            if fam == "gitea":
                # Gitea sends a "delete" event for a deleted branch
                return {"ref": ref.split("/", 2)[2], "ref_type": "branch",
                        "pusher_type": "user", "repository": repo,
                        "sender": sender}, "delete"
            return {"ref": ref, "before": before, "after": ZERO, "created": False,
                    "deleted": True, "forced": False, "base_ref": None,
                    "commits": [], "head_commit": None, "repository": repo,
                    "pusher": {"name": a.sender, "email": "dev@example.com"},
                    "sender": sender}, "push"
        if ev == "ping":
            return {"zen": "Keep it logically awesome.", "hook_id": 109948940,
                    "hook": {"type": "Repository", "id": 109948940, "active": True,
                             "events": ["push", "pull_request"],
                             "config": {"content_type": "json", "insecure_ssl": "0",
                                        "url": "https://ci.example.com/hooks/app"}},
                    "repository": repo, "sender": sender}, "ping"
        # pull_request
        head_ref = a.head_branch
        pr = {
            "number": a.pr, "state": "open", "title": a.message,
            "user": {"login": a.sender},
            "head": {"ref": head_ref, "sha": sha, "repo": repo,
                     "label": "%s:%s" % (a.sender, head_ref)},
            "base": {"ref": a.ref if not a.ref.startswith("refs/") else a.ref.split("/", 2)[2],
                     "sha": before, "repo": repo},
            "merged": False,
        }
        if fam == "gitea":
            pr["id"] = 1000 + a.pr
            pr["head"]["repo_id"] = repo["id"]
        body = {"action": a.action or "opened", "number": a.pr, "pull_request": pr,
                "repository": repo, "sender": sender}
        return body, "pull_request"

    # gitlab
    project = repo_block("gitlab", a)
    common = {
        "user_id": 4, "user_name": a.author, "user_username": a.sender,
        "user_email": "", "user_avatar": "",
        "project_id": project["id"], "project": project,
        "repository": {"name": project["name"], "url": project["git_ssh_url"],
                       "homepage": project["web_url"],
                       "git_http_url": project["git_http_url"],
                       "git_ssh_url": project["git_ssh_url"]},
    }
    if ev in ("push", "tag", "delete", "ping"):
        kind = "tag_push" if ev == "tag" else "push"
        after = ZERO if ev == "delete" else sha
        commits = [] if ev in ("delete", "ping") else [commit_block("gitlab", a, sha)]
        body = {"object_kind": kind, "event_name": kind, "before": before,
                "after": after, "ref": ref, "ref_protected": True,
                "checkout_sha": None if ev == "delete" else sha,
                "message": None, "commits": commits,
                "total_commits_count": len(commits)}
        if ev == "ping":
            # GitLab's "Test" button sends a push of the branch tip with no commits
            body["before"] = ZERO
        body.update(common)
        return body, ("Tag Push Hook" if ev == "tag" else "Push Hook")
    # merge request
    target = a.ref if not a.ref.startswith("refs/") else a.ref.split("/", 2)[2]
    attrs = {
        "id": 99, "iid": a.pr, "title": a.message, "state": "opened",
        "action": a.action or "open", "source_branch": a.head_branch,
        "target_branch": target, "source_project_id": project["id"],
        "target_project_id": project["id"], "merge_status": "unchecked",
        "last_commit": {"id": sha, "message": a.message, "title": a.message,
                        "timestamp": "2026-01-02T03:04:05Z",
                        "author": {"name": a.author, "email": "dev@example.com"}},
        "url": "%s/-/merge_requests/%d" % (project["web_url"], a.pr),
        "source": project, "target": project,
    }
    body = {"object_kind": "merge_request", "event_type": "merge_request",
            "user": {"id": 4, "name": a.author, "username": a.sender},
            "object_attributes": attrs, "labels": [], "changes": {}}
    body.update({k: v for k, v in common.items() if k in ("project", "repository")})
    return body, "Merge Request Hook"


FIXTURE = {  # (forge family, event) -> (file, event header)
    ("github", "push"): ("github-push.json", "push"),
    ("github", "tag"): ("github-push-tag.json", "push"),
    ("github", "delete"): ("github-push-delete.json", "push"),
    ("github", "ping"): ("github-ping.json", "ping"),
    ("github", "pull_request"): ("github-pull_request-%s.json", "pull_request"),
    ("gitea", "push"): ("gitea-push.json", "push"),
    ("gitea", "tag"): ("gitea-push-tag.json", "push"),
    ("gitea", "delete"): ("gitea-delete.json", "delete"),
    ("gitea", "ping"): ("gitea-push-test.json", "push"),
    ("gitea", "pull_request"): ("gitea-pull_request-%s.json", "pull_request"),
    ("gitlab", "push"): ("gitlab-push.json", "Push Hook"),
    ("gitlab", "tag"): ("gitlab-tag-push.json", "Tag Push Hook"),
    ("gitlab", "delete"): ("gitlab-push-delete.json", "Push Hook"),
    ("gitlab", "ping"): ("gitlab-push-test.json", "Push Hook"),
    ("gitlab", "pull_request"): ("gitlab-merge_request-%s.json", "Merge Request Hook"),
}


def from_fixture(forge, a):
    """The body from tests/fixtures/webhooks (the forges' documented
    payloads, recorded by the forge helper), patched with this delivery's
    ref, commit and number; None when there is no such fixture."""
    fam = "gitlab" if forge.startswith("gitlab") else forge
    if not a.fixtures or (fam, a.event) not in FIXTURE:
        return None
    name, event_name = FIXTURE[(fam, a.event)]
    if "%s" in name:
        name = name % (a.action or ("open" if fam == "gitlab" else "opened"))
    path = os.path.join(a.fixtures, name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        o = json.load(f)
    sha = a.sha or sha_of("after:" + a.ref)
    before = a.before or sha_of("before:" + a.ref)
    short = a.ref.split("/", 2)[2] if a.ref.startswith("refs/") else a.ref
    if a.event in ("push", "tag"):
        full = a.ref if a.ref.startswith("refs/") else (
            ("refs/tags/" if a.event == "tag" else "refs/heads/") + a.ref)
        o["ref"] = full
        o["after"] = sha
        if a.event == "push":
            o["before"] = before
        if fam == "gitlab":
            o["checkout_sha"] = sha
        if o.get("head_commit"):
            o["head_commit"]["id"] = sha
        if o.get("commits"):
            o["commits"][-1]["id"] = sha
    elif a.event == "delete":
        o["ref"] = short if fam == "gitea" else "refs/heads/" + short
    elif a.event == "pull_request":
        if fam == "gitlab":
            oa = o["object_attributes"]
            oa["iid"] = a.pr
            oa["target_branch"] = short
            oa["last_commit"]["id"] = sha
        else:
            o["number"] = a.pr
            o["pull_request"]["number"] = a.pr
            o["pull_request"]["head"]["sha"] = sha
            o["pull_request"]["base"]["ref"] = short
    return o, event_name


def hmac_hex(key, data):
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def build(a):
    """(headers list, body bytes) for the delivery a describes."""
    fam = "gitlab" if a.forge.startswith("gitlab") else a.forge
    if a.body_file:
        with open(a.body_file, "rb") as f:
            body = f.read()
        event_name = a.event_name or {"github": "push", "gitea": "push",
                                      "gitlab": "Push Hook"}[fam]
    else:
        obj, event_name = from_fixture(a.forge, a) or payload(a.forge, a)
        if a.event_name:
            event_name = a.event_name
        body = json.dumps(obj, separators=(",", ":")).encode()
        if a.oversize:
            # valid JSON, padded with whitespace inside the object
            pad = a.oversize - len(body)
            if pad > 0:
                body = body[:-1] + b" " * pad + b"}"
    if a.malformed:
        body = b'{"ref": "refs/heads/main", "after": '  # cut short: not JSON

    ctype = a.content_type or "application/json"
    if a.form:
        body = b"payload=" + urllib.parse.quote_plus(body).encode()
        ctype = a.content_type or "application/x-www-form-urlencoded"

    secret = a.secret.encode()
    if a.wrong_secret:
        secret = b"not-" + secret
    signed = body
    if a.bad_signature:
        signed = body + b" "  # a MAC of other bytes: right form, wrong value

    delivery = a.delivery or str(uuid.uuid4())
    h = [("Content-Type", ctype), ("User-Agent", "sign_hook/1 (%s)" % a.forge)]
    sig = not a.no_signature
    if a.forge == "github":
        h += [("X-GitHub-Event", event_name), ("X-GitHub-Delivery", delivery),
              ("X-GitHub-Hook-ID", "109948940")]
        if sig:
            h.append(("X-Hub-Signature-256", "sha256=" + hmac_hex(secret, signed)))
    elif a.forge == "gitea":
        h += [("X-Gitea-Event", event_name), ("X-Gitea-Event-Type", event_name),
              ("X-Gitea-Delivery", delivery)]
        if sig:
            h.append(("X-Gitea-Signature", hmac_hex(secret, signed)))
    elif a.forge == "gitlab-token":
        h += [("X-Gitlab-Event", event_name), ("X-Gitlab-Event-UUID", delivery),
              ("X-Gitlab-Instance", "https://gitlab.example.com")]
        if sig:
            tok = secret if not a.bad_signature else secret + b"x"
            h.append(("X-Gitlab-Token", tok.decode()))
    else:  # gitlab-standard-webhooks
        ts = str(int(time.time()) - (600 if a.stale else 0))
        h += [("X-Gitlab-Event", event_name), ("X-Gitlab-Event-UUID", delivery),
              ("X-Gitlab-Instance", "https://gitlab.example.com"),
              ("webhook-id", delivery), ("webhook-timestamp", ts)]
        if sig:
            key = secret
            if key.startswith(b"whsec_"):
                key = base64.b64decode(key[6:])
            mac = hmac.new(key, delivery.encode() + b"." + ts.encode() + b"." + signed,
                           hashlib.sha256).digest()
            h.append(("webhook-signature", "v1," + base64.b64encode(mac).decode()))
    for extra in a.header or []:
        name, _, value = extra.partition(":")
        h.append((name.strip(), value.strip()))
    return h, body


def readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def send(a, headers, body):
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=a.timeout)
    path = u.path + ("?" + u.query if u.query else "")
    sent_err = None
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if a.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        # A server may answer (413) before the body: give it a moment when
        # the body is big, then stop sending once it has answered.
        big = len(body) > 1 << 20
        if big and readable(conn.sock, 0.5):
            body = b""
        step = 64 << 10
        for off in range(0, len(body), step):
            piece = body[off:off + step]
            if a.chunked:
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                conn.send(piece)
            if big and readable(conn.sock, 0):
                break
        else:
            if a.chunked:
                conn.send(b"0\r\n\r\n")
    except OSError as e:  # broken pipe / reset: the answer may still be there
        sent_err = e
    try:
        r = conn.getresponse()
        data = r.read()
        return r.status, data.decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, "connection failed: %s%s" % (e, " (while sending: %s)" % sent_err
                                               if sent_err else "")
    finally:
        conn.close()


def make_parser():
    """The options of one delivery (also what tests/tools/hook_load.py
    builds its deliveries from: make_parser().parse_args([...]) -> build)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="http://HOST:PORT/hooks/NAME")
    p.add_argument("--forge", required=True, choices=FORGES)
    p.add_argument("--secret", required=True)
    p.add_argument("--event", default="push", choices=EVENTS)
    p.add_argument("--event-name", help="override the forge's event header value")
    p.add_argument("--ref", default="main", help="branch, tag or full ref (PR: target branch)")
    p.add_argument("--sha", help="40 hex commit (default: derived from the ref)")
    p.add_argument("--before", help="previous commit of the push")
    p.add_argument("--pr", type=int, default=12)
    p.add_argument("--action", help="pull request action (default opened / open)")
    p.add_argument("--head-branch", default="feature/x")
    p.add_argument("--project", default="team/app")
    p.add_argument("--clone-url")
    p.add_argument("--message", default="Fix the widget")
    p.add_argument("--author", default="Dev Eloper")
    p.add_argument("--sender", default="octocat")
    p.add_argument("--delivery", help="delivery id (default: a new UUID)")
    p.add_argument("--body-file", help="send these bytes as the payload")
    p.add_argument("--fixtures", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "webhooks"),
        help="payload templates (default tests/fixtures/webhooks; '' = built in)")
    p.add_argument("--content-type")
    p.add_argument("--form", action="store_true")
    p.add_argument("--header", action="append", help="extra 'Name: value'")
    p.add_argument("--bad-signature", action="store_true")
    p.add_argument("--no-signature", action="store_true")
    p.add_argument("--wrong-secret", action="store_true")
    p.add_argument("--stale", action="store_true")
    p.add_argument("--malformed", action="store_true")
    p.add_argument("--oversize", type=int, default=0, metavar="BYTES")
    p.add_argument("--chunked", action="store_true")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--dump", action="store_true", help="print the request, do not send")
    p.add_argument("--body-out", help="write the body to this file, do not send")
    return p


def main():
    p = make_parser()
    a = p.parse_args()

    headers, body = build(a)
    if a.body_out:
        with open(a.body_out, "wb") as f:
            f.write(body)
    if a.dump:
        out = sys.stdout.buffer
        for k, v in headers:
            out.write(("%s: %s\n" % (k, v)).encode())
        out.write(b"\n" + body)
        return 0
    if a.body_out:
        for k, v in headers:
            print("%s: %s" % (k, v))
        return 0
    if not a.url:
        p.error("--url is required to send")
    status, text = send(a, headers, body)
    print("%03d" % status)
    if text:
        print(text.rstrip("\n"))
    return 0 if status else 1


if __name__ == "__main__":
    sys.exit(main())
