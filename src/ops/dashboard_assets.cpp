// The dashboard's page and style sheet, compiled in: the endpoint downloads nothing and
// serves nothing from disk. The script is in dashboard_script.cpp.
#include <corvo/ops/dashboard.hpp>

namespace corvo::ops {

std::string_view dashboard_html() noexcept {
  static constexpr std::string_view text = R"corvo(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>corvo dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/style.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>corvo</h1>
  <nav>
    <a href="#overview">Overview</a>
    <a href="#schedule">Schedule</a>
    <a href="#dead">Dead letters</a>
    <a href="#events">Events</a>
    <a href="#streams">Streams</a>
    <a href="#queues">Queues</a>
    <a href="#health">Health</a>
  </nav>
  <span id="status" role="status"></span>
</header>
<main id="main"><p>Loading…</p></main>
<section id="login" hidden>
  <h2>Token required</h2>
  <p>This endpoint needs its bearer token (<code>ops.token</code>).</p>
  <form id="login-form">
    <input id="token" type="password" autocomplete="off" placeholder="token">
    <button id="token-submit" type="submit">Sign in</button>
  </form>
  <p id="login-error" class="error"></p>
</section>
</body>
</html>
)corvo";
  return text;
}

std::string_view dashboard_css() noexcept {
  static constexpr std::string_view text = R"corvo(* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
header { display: flex; align-items: center; gap: 24px; padding: 8px 20px; background: #1d2330; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
nav a { color: #cfd6e4; margin-right: 14px; text-decoration: none; }
nav a.active, nav a:hover { color: #fff; text-decoration: underline; }
#status { margin-left: auto; font-size: 12px; color: #cfd6e4; }
main, #login { padding: 16px 20px; }
h2 { font-size: 16px; margin: 18px 0 8px; }
table { border-collapse: collapse; background: #fff; margin-bottom: 12px; min-width: 480px; }
th, td { border: 1px solid #dde1e8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; max-width: 560px; font-size: 12px; }
button { cursor: pointer; }
.error { color: #b3261e; }
.state-up { color: #1e7d32; font-weight: 600; }
.state-degraded { color: #b26a00; font-weight: 600; }
.state-down { color: #b3261e; font-weight: 600; }
.charts { display: flex; gap: 16px; flex-wrap: wrap; }
.chart { background: #fff; border: 1px solid #dde1e8; padding: 8px; }
.chart h3 { font-size: 13px; margin: 0 0 4px; }
.toolbar { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; padding: 12px; border: 1px solid #dde1e8; }
dt { font-weight: 600; }
dd { margin: 0; }
td.nowrap { white-space: nowrap; }
.kind-succeeded { color: #1e7d32; }
.kind-failed { color: #b26a00; }
.kind-dead { color: #b3261e; font-weight: 600; }
.kind-cancelled { color: #5b6475; }
)corvo";
  return text;
}

}  // namespace corvo::ops
