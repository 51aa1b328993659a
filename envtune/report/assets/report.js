// envtune report: draws the figures the report embeds and browses its rollouts and eval records.
// Every text that came from a model or an environment is set as textContent, never parsed as markup.
"use strict";

const DATA = JSON.parse(document.getElementById("report-data").textContent);
const PLOT_CONFIG = { responsive: true, displaylogo: false };

// ----- small DOM helpers -----------------------------------------------------------------------
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "onclick" || name === "onchange") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "-" : Number(value).toFixed(digits);
}

function accuracyCell(cell) {
  if (!cell || cell.accuracy === null || cell.accuracy === undefined) return "-";
  return `${fmt(cell.accuracy)} ± ${fmt(cell.interval95 || 0)}`;
}

function verdictText(passed) {
  return el("span", { class: passed ? "pass" : "fail", text: passed ? "passed" : "failed" });
}

const drawn = new Set();
function drawPlot(div, figure) {
  if (drawn.has(div.id)) return;
  drawn.add(div.id);
  Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG);
}

// ----- the conversation viewer (rollouts and eval records alike) ------------------------------
function renderCalls(title, calls) {
  return el("div", {}, el("div", { class: "muted", text: title }),
    calls && calls.length ? el("pre", { text: calls.join("\n") }) : el("div", { class: "empty", text: "no calls" }));
}

function renderEntry(entry) {
  if (entry.kind === "reply") {
    const box = el("div", { class: "msg reply" }, el("div", { class: "who", text: `assistant (${entry.reading})` }));
    if (entry.reasoning) box.append(el("div", { class: "reasoning", text: entry.reasoning }));
    if (entry.calls.length) box.append(el("pre", { class: "call-list", text: entry.calls.join("\n") }));
    if (entry.error) box.append(el("div", { class: "format-error", text: `could not be read: ${entry.error}` }));
    box.append(el("details", {}, el("summary", { text: "raw reply" }), el("pre", { text: entry.text })));
    return box;
  }
  const who = entry.role === "tool" ? `tool ${entry.name || ""}` : "environment";
  const box = el("div", { class: "msg environment" }, el("div", { class: "who", text: who }), el("pre", { text: entry.text }));
  for (const hint of entry.hints) box.append(el("div", { class: "hint", text: `Hint: ${hint}` }));
  return box;
}

function turnState(turn) {
  if (!turn.played) return ["unplayed", "not played (the episode ended before it)"];
  if (turn.verdict === null) return ["open", "not closed (the episode ended during it)"];
  return [turn.verdict.passed ? "passed" : "failed", null];
}

function renderTurn(turn) {
  const verdict = turn.verdict;
  const [state, note] = turnState(turn);
  const head = el("div", { class: "turn-head" }, `Turn ${turn.turn}: `,
    note ? el("span", { class: "muted", text: note }) : verdictText(verdict.passed));
  if (verdict && !verdict.checked) head.append(el("span", { class: "muted", text: " (a turn to answer without calls)" }));
  const box = el("div", { class: `turn ${state}` }, head);
  if (verdict && verdict.reason) {
    box.append(el("div", { class: "fail reason", text: `${verdict.error_type ? verdict.error_type + ": " : ""}${verdict.reason}` }));
  }
  if (verdict && verdict.state_differences && verdict.state_differences.length) {
    box.append(el("div", { class: "muted", text: `state differs in: ${verdict.state_differences.join(", ")}` }));
  }
  if (turn.hints.length) box.append(el("div", { class: "muted", text: `hints shown: ${turn.hints.join(", ")}` }));
  for (const request of turn.request) {
    box.append(el("div", { class: "msg user" }, el("div", { class: "who", text: "user" }), el("pre", { text: request })));
  }
  for (const entry of turn.entries) box.append(renderEntry(entry));
  if (state !== "passed") {
    box.append(el("div", { class: "calls" }, renderCalls("model's calls", turn.model_calls),
      turn.ground_truth === null ? el("div", { class: "empty", text: "ground truth not available" })
        : renderCalls("ground truth", turn.ground_truth)));
  }
  return box;
}

function renderConversation(container, title, facts, turns) {
  container.replaceChildren(el("h3", { text: title }), el("div", { class: "muted", text: facts }));
  if (turns === null) {
    container.append(el("div", { class: "empty", text: "conversation left out of this report (envtune report --max-conversations)" }));
    return;
  }
  if (!turns.length) container.append(el("div", { class: "empty", text: "no turns were played" }));
  for (const turn of turns) container.append(renderTurn(turn));
}

// ----- lists with filters ---------------------------------------------------------------------
// filters: [{name, label, values(item) -> list of strings}]; columns: [{label, value(item), cls}]
function filteredList(root, items, filters, columns, onPick) {
  const selects = {};
  const bar = el("div", { class: "filters" });
  for (const filter of filters) {
    const values = [...new Set(items.flatMap(filter.values))].sort((a, b) => String(a).localeCompare(String(b), undefined, { numeric: true }));
    const select = el("select", { "data-filter": filter.name, onchange: refresh },
      el("option", { value: "", text: "all" }), values.map((value) => el("option", { value, text: value })));
    selects[filter.name] = select;
    bar.append(el("label", {}, filter.label, select));
  }
  const count = el("span", { class: "muted" });
  bar.append(count);
  const body = el("tbody");
  const table = el("table", { class: "list" },
    el("thead", {}, el("tr", {}, columns.map((column) => el("th", { class: column.cls, text: column.label })))), body);
  root.append(bar, el("div", { class: "list-wrap" }, table));

  function refresh() {
    const shown = items.filter((item) => filters.every((filter) => {
      const wanted = selects[filter.name].value;
      return !wanted || filter.values(item).map(String).includes(wanted);
    }));
    count.textContent = `${shown.length} of ${items.length}`;
    body.replaceChildren(...shown.map((item) => {
      const row = el("tr", {}, columns.map((column) => {
        const value = column.value(item);
        return el("td", { class: column.cls }, value instanceof Node ? value : String(value));
      }));
      row.onclick = () => {
        for (const other of body.querySelectorAll("tr.selected")) other.classList.remove("selected");
        row.classList.add("selected");
        onPick(item);
      };
      return row;
    }));
  }
  refresh();
}

// ----- curriculum -----------------------------------------------------------------------------
function renderStageDetail(box, stage) {
  if (!stage) {
    box.replaceChildren(el("div", { class: "muted", text: "All stages. Pick a stage to zoom to it and read its transition checks; hover a red diamond for a decision." }));
    return;
  }
  box.replaceChildren(
    el("h3", { text: `Stage ${stage.index + 1}: ${stage.name}` }),
    el("div", { text: `${stage.steps} of at most ${stage.max_steps} steps; reward ${stage.reward}, ${stage.feedback} feedback, `
      + `split ${stage.split} (${stage.categories.join(", ")}); the transition reads validation ${stage.metric}` }),
    el("div", { class: "decision" }, el("b", { text: "Decision: " }), stage.decision || "not decided yet (the stage is running)"),
  );
  if (stage.checks.length) {
    box.append(el("table", {},
      el("thead", {}, el("tr", {}, el("th", { class: "num", text: "step" }), el("th", { text: "moves on" }), el("th", { text: "check" }))),
      el("tbody", {}, stage.checks.map((check) => el("tr", {},
        el("td", { class: "num", text: check.step }), el("td", { text: check.advance ? "yes" : "no" }), el("td", { text: check.reason }))))));
  }
}

function zoom(div, range) {
  if (!div.layout) return;  // not drawn (a run with nothing logged yet)
  const update = {};
  for (const key of Object.keys(div.layout)) {
    if (key.startsWith("xaxis")) {
      if (range) update[`${key}.range`] = range;
      else update[`${key}.autorange`] = true;
    }
  }
  Plotly.relayout(div, update);
}

function renderCurriculum(view) {
  if (!DATA.runs.length) {
    view.append(el("p", { class: "empty", text: "No run directories were given (envtune report RUN_DIR ...)." }));
    return;
  }
  DATA.runs.forEach((run, runIndex) => {
    const plot = el("div", { class: "plot", id: `curriculum-plot-${runIndex}` });
    const detail = el("div", { class: "stage-detail" });
    const buttons = el("div", { class: "stage-buttons" });
    const pick = (stage, button) => {
      for (const other of buttons.children) other.classList.remove("active");
      button.classList.add("active");
      renderStageDetail(detail, stage);
      zoom(plot, stage ? [stage.x0 - 0.5, stage.x1 + 0.5] : null);
    };
    const all = el("button", { class: "active", "data-stage": "", text: "all stages" });
    all.onclick = () => pick(null, all);
    buttons.append(all);
    for (const stage of run.stages) {
      const button = el("button", { "data-stage": stage.name, text: `${stage.index + 1} ${stage.name}` });
      button.onclick = () => pick(stage, button);
      buttons.append(button);
    }
    view.append(el("div", { class: "run" },
      el("h2", { text: `Run ${run.name}` }),
      el("div", { class: "muted", text: `config ${run.config}, model ${run.model}, engine ${run.engine}, BFCL ${run.release}; ${run.path}` }),
      run.notes.map((note) => el("div", { class: "note", text: note })), buttons, detail, plot));
    renderStageDetail(detail, null);
  });
}

// ----- rollouts -------------------------------------------------------------------------------
function renderRollouts(view) {
  const items = DATA.runs.flatMap((run) => run.rollouts.map((rollout) => ({ ...rollout, run: run.name })));
  if (!items.length) {
    view.append(el("p", { class: "empty", text: "No sampled rollouts: give a run directory of the TRL engine." }));
    return;
  }
  view.append(el("p", { class: "muted", text: "Rollouts sampled during training (two per generation batch). Click one to read it turn by turn." }));
  const viewer = el("div", { class: "viewer", id: "rollout-viewer" });
  const filters = [
    ...(DATA.runs.length > 1 ? [{ name: "run", label: "run", values: (item) => [item.run] }] : []),
    { name: "stage", label: "stage", values: (item) => [item.stage] },
    { name: "step", label: "step", values: (item) => [item.step ?? "-"] },
    { name: "task", label: "task", values: (item) => [item.task] },
    { name: "verdict", label: "verdict", values: (item) => [item.passed ? "passed" : "failed"] },
    { name: "category", label: "category", values: (item) => [item.category] },
    { name: "hint", label: "hint kind", values: (item) => (item.hint_kinds.length ? item.hint_kinds : ["none"]) },
  ];
  const columns = [
    { label: "stage", value: (item) => item.stage },
    { label: "step", value: (item) => item.step ?? "-", cls: "num" },
    { label: "task", value: (item) => item.task },
    { label: "category", value: (item) => item.category },
    { label: "reward", value: (item) => fmt(item.reward), cls: "num" },
    { label: "turns passed", value: (item) => `${item.turn_successes.filter(Boolean).length}/${item.num_turns}`, cls: "num" },
    { label: "hints", value: (item) => item.hint_kinds.join(", ") || "-" },
    { label: "verdict", value: (item) => verdictText(item.passed) },
  ];
  filteredList(view, items, filters, columns, (item) => renderConversation(viewer, `${item.task} (stage ${item.stage}, step ${item.step ?? "-"})`,
    `reward ${fmt(item.reward)}; ` + Object.entries(item.rewards).map(([name, value]) => `${name} ${fmt(value)}`).join(", ")
    + (item.truncated ? "; cut off by the token budget" : ""), item.turns));
  view.append(viewer);
}

// ----- evaluation -----------------------------------------------------------------------------
function renderTableOne(view, table) {
  view.append(el("h2", { text: "Accuracy per category (95% intervals over samples)" }),
    el("table", { id: "table-one" },
      el("thead", {}, el("tr", {}, el("th", { text: "model" }), el("th", { text: "eval" }),
        table.columns.map((column) => el("th", { class: "num", text: column })))),
      el("tbody", {}, table.rows.map((row) => el("tr", {}, el("td", { text: row.model }),
        el("td", { text: `${row.name} (${row.entries} entries, ${row.samples} sample${row.samples === 1 ? "" : "s"})` }),
        table.columns.map((column) => el("td", { class: "num", text: accuracyCell(row.cells[column]) })))))),
    el("div", { class: "plot", id: "table-one-plot" }));
}

function renderEval(view, evaluation, evalIndex) {
  const summary = evaluation.summary;
  const settings = evaluation.settings;
  view.append(el("h2", { text: `Eval ${evaluation.name}: ${evaluation.model}` }),
    el("div", { class: "muted", text: `protocol ${settings.protocol}, ${settings.feedback} feedback, prompt ${settings.prompt}, `
      + `${settings.samples} sample(s), temperature ${settings.temperature}, BFCL ${settings.release || "(default release)"}; ${evaluation.path}` }),
    evaluation.notes.map((note) => el("div", { class: "note", text: note })),
    el("table", {},
      el("thead", {}, el("tr", {}, ["category", "accuracy ± 95%", "over completed", "entries", "request errors"].map(
        (label, index) => el("th", { class: index ? "num" : "", text: label })))),
      el("tbody", {}, Object.entries(summary.categories).map(([category, cell]) => el("tr", {},
        el("td", { text: category }), el("td", { class: "num", text: accuracyCell(cell) }),
        el("td", { class: "num", text: fmt(cell.accuracy_completed) }), el("td", { class: "num", text: cell.entries }),
        el("td", { class: "num", text: cell.request_errors }))))),
    el("div", { text: `overall ${accuracyCell({ accuracy: summary.overall, interval95: summary.overall_interval95 })}, `
      + `progress ${fmt(summary.progress)}, format-error rate ${fmt(summary.format_error_rate)}, `
      + `tool-error rate ${fmt(summary.tool_error_rate)}, request errors ${summary.request_errors}, force-quits ${summary.force_quits}` }),
    el("div", { class: "plot", id: `eval-failures-${evalIndex}` }));
  const drill = el("div", {});
  const viewer = el("div", { class: "viewer", id: `eval-viewer-${evalIndex}` });
  view.append(el("h3", { text: "Per task" }), drill, viewer);
  filteredList(drill, evaluation.records, [
    { name: "verdict", label: "verdict", values: (item) => [item.valid ? "passed" : "failed"] },
    { name: "category", label: "category", values: (item) => [item.category] },
    { name: "error", label: "error type", values: (item) => [item.error_type || "-"] },
  ], [
    { label: "task", value: (item) => item.id },
    { label: "sample", value: (item) => item.sample, cls: "num" },
    { label: "category", value: (item) => item.category },
    { label: "progress", value: (item) => fmt(item.progress), cls: "num" },
    { label: "failing turn", value: (item) => item.failing_turn ?? "-", cls: "num" },
    { label: "error type", value: (item) => item.error_type || item.request_error || "-" },
    { label: "verdict", value: (item) => verdictText(item.valid) },
  ], (item) => renderConversation(viewer, `${item.id} (sample ${item.sample})`,
    item.valid ? "passed" : `failed: ${item.reason || item.request_error || ""}`, item.turns));
}

function renderEvaluation(view) {
  if (!DATA.evals.length) {
    view.append(el("p", { class: "empty", text: "No eval directories were given (envtune report EVAL_DIR ...)." }));
    return;
  }
  renderTableOne(view, DATA.table_one);
  DATA.evals.forEach((evaluation, index) => renderEval(view, evaluation, index));
}

// ----- the page -------------------------------------------------------------------------------
const VIEWS = [
  { id: "curriculum", label: "Curriculum", render: renderCurriculum,
    plots: () => DATA.runs.map((run, index) => [`curriculum-plot-${index}`, run.figure]) },
  { id: "rollouts", label: "Rollouts", render: renderRollouts, plots: () => [] },
  { id: "evaluation", label: "Evaluation", render: renderEvaluation,
    plots: () => (DATA.table_one ? [["table-one-plot", DATA.table_one.figure]] : [])
      .concat(DATA.evals.map((evaluation, index) => [`eval-failures-${index}`, evaluation.figure])) },
];

function show(id) {
  for (const view of VIEWS) {
    document.getElementById(`view-${view.id}`).classList.toggle("active", view.id === id);
    document.getElementById(`tab-${view.id}`).classList.toggle("active", view.id === id);
  }
  // Plotly sizes a plot from its container, so each is drawn when its view first shows
  for (const [divId, figure] of VIEWS.find((view) => view.id === id).plots()) drawPlot(document.getElementById(divId), figure);
}

function main() {
  const nav = el("nav", {}, VIEWS.map((view) => el("button", { id: `tab-${view.id}`, text: view.label, onclick: () => show(view.id) })));
  document.body.append(
    el("header", {}, el("h1", { text: "envtune report" }), nav,
      el("span", { class: "meta", text: `envtune ${DATA.version}, written ${DATA.generated}` })),
    el("main", {}, VIEWS.map((view) => el("section", { class: "view", id: `view-${view.id}` }))));
  for (const view of VIEWS) view.render(document.getElementById(`view-${view.id}`));
  show(DATA.runs.length ? "curriculum" : "evaluation");
}

main();
