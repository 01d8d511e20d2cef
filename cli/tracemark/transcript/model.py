"""What a transcript yields: plain dataclasses, independent of the agent that wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracemark_common.pricing import TokenCounts

MAX_WARNINGS = 50
MAX_SHELL_COMMANDS = 1000


@dataclass
class Usage:
    """Token counts summed over API responses (each response counted once), plus their cost.

    `cost_usd` is None when any counted response used a model the price table does not know:
    an unknown price is never a silent $0.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = 0.0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_creation_5m_input_tokens + self.cache_creation_1h_input_tokens

    @property
    def total_tokens(self) -> int:
        """input + output, as Chainloop defines it (cache tokens not included)."""
        return self.input_tokens + self.output_tokens

    def add(self, tokens: TokenCounts, cost: float | None) -> None:
        self.input_tokens += tokens.input_tokens
        self.output_tokens += tokens.output_tokens
        self.cache_creation_5m_input_tokens += tokens.cache_creation_5m_input_tokens
        self.cache_creation_1h_input_tokens += tokens.cache_creation_1h_input_tokens
        self.cache_read_input_tokens += tokens.cache_read_input_tokens
        self.requests += 1
        if cost is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += cost

    def merge(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_5m_input_tokens += other.cache_creation_5m_input_tokens
        self.cache_creation_1h_input_tokens += other.cache_creation_1h_input_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.requests += other.requests
        if other.cost_usd is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += other.cost_usd

    @property
    def is_empty(self) -> bool:
        return self.requests == 0 and self.input_tokens == 0 and self.output_tokens == 0


@dataclass
class ShellCommand:
    """One shell tool call: the command, its exit code when the result says (0 on success; the
    `Exit code N` of a failed Bash result), and whether it ran after the session's last successful
    file edit (None when the session edited no file)."""

    command: str
    tool: str = "Bash"
    exit_code: int | None = None
    after_last_edit: bool | None = None
    order: int = 0


@dataclass
class SubagentSummary:
    id: str
    type: str = ""
    description: str = ""
    transcript_found: bool = False
    usage: Usage = field(default_factory=Usage)
    models: set[str] = field(default_factory=set)
    tool_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class TranscriptSummary:
    """Everything the evidence needs from one session's transcript(s)."""

    agent_name: str
    session_id: str = ""
    agent_version: str = ""
    slug: str = ""
    cwd: str = ""
    git_branch: str = ""
    started_at: str = ""
    ended_at: str = ""
    duration_seconds: int = 0
    # usage: `usage` = main thread + every subagent (each counted once); by model over both.
    usage: Usage = field(default_factory=Usage)
    main_thread: Usage = field(default_factory=Usage)
    by_model: dict[str, Usage] = field(default_factory=dict)
    usage_available: bool = True
    unknown_models: set[str] = field(default_factory=set)
    primary_model: str = ""
    models_used: list[str] = field(default_factory=list)
    # main-thread tool invocations (tool_use blocks, de-duplicated by id), failures by tool name
    tool_counts: dict[str, int] = field(default_factory=dict)
    tool_failures: dict[str, int] = field(default_factory=dict)
    shell_commands: list[ShellCommand] = field(default_factory=list)
    # record counts as Chainloop computes them (user + assistant + progress records)
    user_messages: int = 0
    assistant_messages: int = 0
    progress_messages: int = 0
    prompts: int = 0
    permission_modes: list[str] = field(default_factory=list)
    compactions: int = 0
    subagents: list[SubagentSummary] = field(default_factory=list)
    records: int = 0
    bytes_read: int = 0
    malformed_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def total_messages(self) -> int:
        return self.user_messages + self.assistant_messages + self.progress_messages

    def warn(self, message: str) -> None:
        if message in self.warnings:
            return
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append(f"... further warnings suppressed (limit {MAX_WARNINGS})")
