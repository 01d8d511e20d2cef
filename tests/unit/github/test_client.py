"""The GitHub client against the fake GitHub over real loopback HTTP."""

from __future__ import annotations

import jwt
import pytest

from tracemark_common.github import (
    USER_AGENT,
    AppCredentials,
    GitHubClient,
    GitHubError,
    GitHubNotFound,
    GitHubUnavailable,
    PaginationError,
    TokenCache,
    parse_link_header,
)
from tracemark_local.fake_github import FakeGitHub

APP_ID = "4242"  # as in conftest
Sleeps = list[float]

REPO = "acme/app"


@pytest.fixture
def pr(fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO, repo_id=42, installation_id=7)
    fake_github.add_pull(REPO, 5, [f"commit {i}" for i in range(3)])


def test_app_jwt_claims(client: GitHubClient, app_keys: tuple[str, str]) -> None:
    # Given a client with a fixed clock
    client.clock = lambda: 1_700_000_000.0
    # When it mints the App JWT
    token = client.app_jwt()
    # Then it is RS256, issued by the app id, backdated 60 s and valid for at most 10 minutes
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, app_keys[1], algorithms=["RS256"], options={"verify_exp": False})
    assert claims["iss"] == APP_ID
    assert claims["iat"] == 1_700_000_000 - 60
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] > 1_700_000_000


@pytest.mark.usefixtures("pr")
def test_installation_token_is_cached_until_near_expiry(client: GitHubClient, fake_github: FakeGitHub) -> None:
    # Given two calls with one installation
    client.get_pull(7, REPO, 5)
    client.get_pull(7, REPO, 5)
    # Then one token was requested
    assert len(fake_github.calls_to("POST", r"/app/installations/7/access_tokens")) == 1
    # When GitHub hands out a token that expires within the five-minute margin
    fake_github.token_lifetime_seconds = 200
    client.tokens.clear()
    client.get_pull(7, REPO, 5)
    client.get_pull(7, REPO, 5)
    # Then it is not reused
    assert len(fake_github.calls_to("POST", r"/app/installations/7/access_tokens")) == 3


@pytest.mark.usefixtures("pr")
def test_headers_and_user_agent(client: GitHubClient, fake_github: FakeGitHub) -> None:
    client.get_pull(7, REPO, 5)
    call = fake_github.calls_to("GET", r"/pulls/5$")[0]
    assert call.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("tracemark/")
    assert call.headers["X-Github-Api-Version"] == "2022-11-28"
    assert call.headers["Accept"] == "application/vnd.github+json"
    assert call.headers["Authorization"].startswith("token ghs_")


def test_pull_commits_follow_link_pagination(client: GitHubClient, fake_github: FakeGitHub) -> None:
    # Given a PR with 230 commits (three pages of 100)
    fake_github.add_repo(REPO, repo_id=42, installation_id=7)
    pull = fake_github.add_pull(REPO, 9, [f"c{i}" for i in range(230)])
    # When the client lists them
    commits = client.list_pull_commits(7, REPO, 9, base_sha=pull.base_sha, head_sha=pull.head_sha, total=230)
    # Then all come back, oldest first, in three requests
    assert [c["commit"]["message"] for c in commits] == [f"c{i}" for i in range(230)]
    assert len(fake_github.calls_to("GET", r"/pulls/9/commits$")) == 3


def test_more_than_250_commits_go_through_compare(client: GitHubClient, fake_github: FakeGitHub) -> None:
    fake_github.add_repo(REPO, repo_id=42, installation_id=7)
    pull = fake_github.add_pull(REPO, 9, [f"c{i}" for i in range(260)])
    commits = client.list_pull_commits(7, REPO, 9, base_sha=pull.base_sha, head_sha=pull.head_sha, total=260)
    assert len(commits) == 260
    assert commits[-1]["sha"] == pull.head_sha
    assert fake_github.calls_to("GET", r"/compare/")
    assert not fake_github.calls_to("GET", r"/pulls/9/commits$")


def test_exactly_250_listed_falls_back_to_compare(client: GitHubClient, fake_github: FakeGitHub) -> None:
    # Given a PR whose count we do not know in advance, and the pulls endpoint caps at 250
    fake_github.add_repo(REPO, repo_id=42, installation_id=7)
    pull = fake_github.add_pull(REPO, 9, [f"c{i}" for i in range(251)])
    commits = client.list_pull_commits(7, REPO, 9, base_sha=pull.base_sha, head_sha=pull.head_sha)
    assert len(commits) == 251


@pytest.mark.usefixtures("pr")
def test_link_to_another_host_stops_pagination(client: GitHubClient, fake_github: FakeGitHub) -> None:
    # Given a server whose Link header points at another port
    fake_github.add_pull(REPO, 6, [f"c{i}" for i in range(150)])
    fake_github.link_base = "http://127.0.0.1:1"
    # Then listing stops with an error and nothing is fetched from elsewhere
    with pytest.raises(PaginationError, match=r"127\.0\.0\.1:1"):
        client.list_pull_commits(7, REPO, 6)


@pytest.mark.usefixtures("pr")
@pytest.mark.parametrize("other", ["https://127.0.0.1", "http://evil.example"])
def test_link_on_other_scheme_or_host_stops(client: GitHubClient, fake_github: FakeGitHub, other: str) -> None:
    fake_github.add_pull(REPO, 6, [f"c{i}" for i in range(150)])
    port = fake_github.url.rsplit(":", 1)[1]
    fake_github.link_base = f"{other}:{port}"
    with pytest.raises(PaginationError):
        client.list_pull_commits(7, REPO, 6)


@pytest.mark.usefixtures("pr")
@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_with_backoff(
    client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps, status: int
) -> None:
    fake_github.fail("GET", r"/pulls/5$", status, times=2)
    assert client.get_pull(7, REPO, 5)["number"] == 5
    assert sleeps == [1.0, 2.0]
    assert len(fake_github.calls_to("GET", r"/pulls/5$")) == 3


@pytest.mark.usefixtures("pr")
def test_429_honours_retry_after(client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    fake_github.fail("GET", r"/pulls/5$", 429, headers={"Retry-After": "7"})
    assert client.get_pull(7, REPO, 5)["number"] == 5
    assert sleeps == [7.0]


@pytest.mark.usefixtures("pr")
def test_secondary_rate_limit_403_is_retried(client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    fake_github.fail_secondary_rate_limit("POST", r"/issues/5/comments$", retry_after=3)
    comment = client.create_issue_comment(7, REPO, 5, "hello")
    assert comment["body"] == "hello"
    assert sleeps == [3.0]
    assert len(fake_github.comments_on(REPO, 5)) == 1


@pytest.mark.usefixtures("pr")
def test_secondary_rate_limit_without_retry_after_waits_a_minute(
    client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps
) -> None:
    fake_github.fail("GET", r"/pulls/5$", 403, body={"message": "You have exceeded a secondary rate limit."})
    client.get_pull(7, REPO, 5)
    assert sleeps == [60.0]


@pytest.mark.usefixtures("pr")
def test_primary_rate_limit_waits_until_reset(client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    client.get_pull(7, REPO, 5)  # a token first: the fake checks the JWT against the real clock
    client.clock = lambda: 1_000.0
    client.max_wait_seconds = 10_000
    fake_github.fail(
        "GET",
        r"/pulls/5$",
        403,
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"},
        body={"message": "API rate limit exceeded"},
    )
    # the fake's tokens outlive this fixed clock, so only the wait is affected
    client.get_pull(7, REPO, 5)
    assert sleeps == [30.0]


@pytest.mark.usefixtures("pr")
def test_wait_longer_than_the_cap_gives_up_with_retry_after(client: GitHubClient, fake_github: FakeGitHub) -> None:
    fake_github.fail("GET", r"/pulls/5$", 429, headers={"Retry-After": "3600"})
    with pytest.raises(GitHubUnavailable) as info:
        client.get_pull(7, REPO, 5)
    assert info.value.retry_after == 3600.0


@pytest.mark.usefixtures("pr")
def test_persistent_5xx_gives_up(client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    fake_github.fail("GET", r"/pulls/5$", 502, times=10)
    with pytest.raises(GitHubUnavailable, match="502"):
        client.get_pull(7, REPO, 5)
    assert len(fake_github.calls_to("GET", r"/pulls/5$")) == client.max_attempts


@pytest.mark.usefixtures("pr")
def test_404_for_a_deleted_pull_request(client: GitHubClient, fake_github: FakeGitHub) -> None:
    fake_github.pull(REPO, 5).deleted = True
    with pytest.raises(GitHubNotFound):
        client.get_pull(7, REPO, 5)
    assert len(fake_github.calls_to("GET", r"/pulls/5$")) == 1


@pytest.mark.usefixtures("pr")
def test_other_4xx_is_not_retried(client: GitHubClient, fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    fake_github.fail("POST", r"/check-runs$", 422, body={"message": "Invalid request"})
    with pytest.raises(GitHubError, match="422 Invalid request"):
        client.create_check_run(7, REPO, {"name": "x", "head_sha": "a" * 40})
    assert sleeps == []


@pytest.mark.usefixtures("pr")
def test_revoked_token_is_replaced_once(client: GitHubClient, fake_github: FakeGitHub) -> None:
    client.get_pull(7, REPO, 5)
    fake_github.tokens.clear()  # GitHub revoked every token
    assert client.get_pull(7, REPO, 5)["number"] == 5
    assert len(fake_github.calls_to("POST", r"/access_tokens$")) == 2


def test_wrong_app_key_is_rejected(fake_github: FakeGitHub, sleeps: Sleeps) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    fake_github.add_repo(REPO, installation_id=7)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    bad = GitHubClient(fake_github.url, AppCredentials(APP_ID, other.decode()), sleep=sleeps, token_cache=TokenCache())
    with pytest.raises(GitHubError) as info:
        bad.installation_token(7)
    assert info.value.status == 401


def test_network_error_is_retried_then_reported(app_keys: tuple[str, str], sleeps: Sleeps) -> None:
    # Given nothing listens on the port
    client = GitHubClient(
        "http://127.0.0.1:1", AppCredentials(APP_ID, app_keys[0]), sleep=sleeps, token_cache=TokenCache()
    )
    with pytest.raises(GitHubUnavailable, match="ConnectionError"):
        client.installation_token(7)
    assert len(sleeps) == client.max_attempts - 1


@pytest.mark.parametrize(
    "name", ["acme", "acme/app/extra", "../etc", "acme/..", "acme/a b", "https://evil/x", "", "a/b?x=1"]
)
def test_hostile_repository_names_are_refused(client: GitHubClient, fake_github: FakeGitHub, name: str) -> None:
    with pytest.raises(GitHubError):
        client.get_pull(7, name, 1)
    assert fake_github.calls == []


@pytest.mark.parametrize("number", [0, -1, True])
def test_bad_numbers_are_refused(client: GitHubClient, number: int) -> None:
    with pytest.raises(GitHubError):
        client.get_pull(7, REPO, number)


def test_bad_base_url() -> None:
    with pytest.raises(GitHubError):
        GitHubClient("file:///etc/passwd", AppCredentials("1", "k"))


@pytest.mark.usefixtures("pr")
def test_comments_create_list_update(client: GitHubClient, fake_github: FakeGitHub) -> None:
    created = client.create_issue_comment(7, REPO, 5, "first")
    client.update_issue_comment(7, REPO, created["id"], "second")
    bodies = [c["body"] for c in client.list_issue_comments(7, REPO, 5)]
    assert bodies == ["second"]


@pytest.mark.usefixtures("pr")
def test_check_run_create_update(client: GitHubClient, fake_github: FakeGitHub) -> None:
    head = fake_github.pull(REPO, 5).head_sha
    run = client.create_check_run(7, REPO, {"name": "Tracemark AI Policies", "head_sha": head, "status": "in_progress"})
    done = client.update_check_run(
        7, REPO, run["id"], {"status": "completed", "conclusion": "success", "output": {"title": "ok", "summary": "s"}}
    )
    assert done["conclusion"] == "success"
    assert fake_github.check_runs_for(REPO, head)[0]["output"]["title"] == "ok"


def test_parse_link_header_from_the_recorded_exchange() -> None:
    value = (
        '<https://api.github.com/repositories/3544490/issues/1136/comments?per_page=3&page=2>; rel="next", '
        '<https://api.github.com/repositories/3544490/issues/1136/comments?per_page=3&page=3>; rel="last"'
    )
    links = parse_link_header(value)
    assert links["next"].endswith("page=2")
    assert links["last"].endswith("page=3")
    assert parse_link_header("garbage, <x>; nothing") == {}


def test_fake_control_api_for_demos(fake_github: FakeGitHub, client: GitHubClient) -> None:
    import requests

    base = fake_github.url + "/_fake"
    assert (
        requests.post(
            f"{base}/repos", json={"full_name": REPO, "repo_id": 42, "installation_id": 7}, timeout=5
        ).status_code
        == 201
    )
    created = requests.post(f"{base}/pulls", json={"full_name": REPO, "number": 2, "messages": ["a"]}, timeout=5)
    head = requests.post(f"{base}/push", json={"full_name": REPO, "number": 2, "messages": ["b"]}, timeout=5)
    assert created.json()["head_sha"] != head.json()["head_sha"]
    requests.post(f"{base}/labels", json={"full_name": REPO, "number": 2, "labels": ["skip-ai-session"]}, timeout=5)
    assert client.get_pull(7, REPO, 2)["labels"] == [{"name": "skip-ai-session"}]
    requests.post(f"{base}/close", json={"full_name": REPO, "number": 2}, timeout=5)
    assert client.get_pull(7, REPO, 2)["state"] == "closed"
    state = requests.get(f"{base}/state", timeout=5).json()
    assert [c["path"] for c in state["calls"] if c["path"].startswith("/repos/")] == [f"/repos/{REPO}/pulls/2"] * 2
    assert requests.post(f"{base}/pulls", json={"full_name": REPO}, timeout=5).status_code == 422
