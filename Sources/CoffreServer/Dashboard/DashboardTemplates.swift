/// The dashboard's Mustache templates, one per page, all filling the `layout` parent.
///
/// Kept in the binary (not bundle resources) so `coffre serve` is one file to copy. Every
/// `{{value}}` is HTML-escaped by Mustache, quotes included, so values are safe in attributes;
/// no template uses the unescaped `{{{…}}}` form. Pages run no inline script or style: the
/// Content-Security-Policy forbids both.
enum DashboardTemplates {
    static let all: [String: String] = [
        "layout": layout, "login": login, "error": error, "overview": overview, "vms": vms,
        "protected": protected, "policies": policies, "nodes": nodes, "about": about, "jobs": jobs, "job": job, "points": points, "files": files,
        "started": started, "jobRows": jobRows, "errorBox": errorBox,
    ]

    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Coffre</title>
        <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/static/dashboard.css">
        <script src="/static/dashboard.js" defer></script>
        </head>
        <body>
        <header class="top">
          <a class="brand" href="/">Coffre</a>
          {{#signedIn}}
          <nav class="tabs" aria-label="Sections">
            {{#nav}}<a href="{{href}}" id="tab-{{id}}"{{#active}} class="active" aria-current="page"{{/active}}>{{label}}</a>{{/nav}}
          </nav>
          <form method="post" action="/logout" class="signout"><span class="role">{{role}}</span> <button type="submit" id="sign-out">Sign out</button></form>
          {{/signedIn}}
        </header>
        <main>
        <h1>{{title}}</h1>
        {{#notice}}<p class="notice" role="status">{{notice}}</p>{{/notice}}
        {{$content}}{{/content}}
        </main>
        </body>
        </html>
        """

    static let errorBox = """
        <div class="error-box" role="alert">
          <p><strong class="code">{{code}}</strong> {{message}}</p>
          {{#workaround}}<p class="workaround">What to do: {{workaround}}</p>{{/workaround}}
        </div>
        """

    static let login = """
        {{<layout}}{{$content}}{{#body}}
        {{#invalid}}<div class="error-box" role="alert"><p><strong class="code">InvalidToken</strong> This token is not valid (or was revoked).</p></div>{{/invalid}}
        <form method="post" action="/login" class="card-form" id="login-form">
          <input type="hidden" name="next" value="{{next}}">
          <label for="token">API token</label>
          <input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
          <p class="hint">The first admin token is in the data folder's <code>admin-token</code> file.</p>
          <button type="submit" id="sign-in">Sign in</button>
        </form>
        {{/body}}{{/content}}{{/layout}}
        """

    static let error = """
        {{<layout}}{{$content}}{{#body}}
        {{> errorBox}}
        <p><a href="{{back}}" id="back">Back</a></p>
        {{/body}}{{/content}}{{/layout}}
        """

    static let jobRows = """
        <table class="grid" id="job-table">
          <thead><tr><th>Job</th><th>Type</th><th>VM</th><th>Status</th><th>Started</th><th>Duration</th><th>Error</th></tr></thead>
          <tbody>
          {{#jobs}}
          <tr data-job="{{id}}">
            <td><a href="{{href}}">{{id}}</a></td><td>{{type}}</td><td>{{vm}}</td>
            <td><span class="status status-{{statusCss}}"{{^finished}} data-watch-job="{{id}}"{{/finished}}>{{status}}</span></td>
            <td>{{started}}</td><td class="job-duration">{{duration}}</td><td class="job-error code">{{errorCode}}</td>
          </tr>
          {{/jobs}}
          {{^jobs}}<tr><td colspan="7" class="empty">No jobs.</td></tr>{{/jobs}}
          </tbody>
        </table>
        """

    static let overview = """
        {{<layout}}{{$content}}{{#body}}
        <section class="cards" aria-label="Protection">
          <a class="card" href="/protected" id="count-protected"><span class="count">{{protectedVMs}}</span><span class="label">Protected VMs</span>
            <small><span id="count-pending">{{pendingInitialBackup}}</span> pending initial backup</small></a>
          <a class="card" href="/protected" id="count-stopped"><span class="count">{{stoppedProtection}}</span><span class="label">Protection stopped</span></a>
          <a class="card" href="/protected" id="count-soft-deleted"><span class="count">{{softDeleted}}</span><span class="label">Soft deleted</span></a>
        </section>
        <h2>Jobs in the last 24 hours</h2>
        <section class="cards" aria-label="Jobs">
          {{#jobCounts}}<a class="card status-{{css}}" href="{{href}}" id="jobs-{{css}}"><span class="count">{{count}}</span><span class="label">{{label}}</span></a>{{/jobCounts}}
        </section>
        <h2>Verification of recovery points</h2>
        <section class="cards" aria-label="Verification">
          <a class="card status-succeeded" href="{{verifiedHref}}" id="count-verified"><span class="count">{{verificationsPassed}}</span><span class="label">Points verified</span>
            <small>latest check passed</small></a>
          <a class="card status-failed" href="{{verificationFailuresHref}}" id="count-verification-failed"><span class="count">{{verificationsFailed}}</span><span class="label">Points failing verification</span>
            <small>latest check failed</small></a>
        </section>
        <h2>Trends</h2>
        <section class="charts" aria-label="Trends">{{{storageChart}}}{{{backupChart}}}</section>
        <h2>Latest jobs</h2>
        {{> jobRows}}
        <p><a href="/jobs">All jobs</a></p>
        {{/body}}{{/content}}{{/layout}}
        """

    static let vms = """
        {{<layout}}{{$content}}{{#body}}
        {{#canOperate}}
        <form method="post" action="/vms/discover" class="toolbar"><button type="submit" id="discover">Discover VMs</button>
          <span class="hint">Asks every fabric for its VMs (a Discovery job).</span></form>
        {{/canOperate}}
        <form method="post" action="/vms/register" id="register-form">
        <table class="grid" id="vm-table">
          <thead><tr><th><span class="sr-only">Select</span></th><th>VM</th><th>Cloud service</th><th>Fabric</th><th>Region</th><th>Power</th><th>VM agent</th><th>Disks</th><th>Registration</th></tr></thead>
          <tbody>
          {{#vms}}
          <tr data-vm="{{key}}">
            <td>{{#registrable}}{{#canOperate}}<input type="checkbox" name="vm" value="{{key}}" aria-label="Select {{key}}">{{/canOperate}}{{/registrable}}</td>
            <td>{{name}}{{#vanished}} <span class="tag">vanished</span>{{/vanished}}</td><td>{{cloudService}}</td><td>{{fabric}}</td><td>{{region}}</td>
            <td>{{power}}</td><td>{{agent}}</td><td>{{disks}}</td>
            <td><span class="state state-{{registrationCss}}">{{registration}}</span>
              {{#error}}<div class="inline-error"><strong>{{code}}</strong> {{message}}{{#workaround}}<br><em>{{workaround}}</em>{{/workaround}}</div>{{/error}}</td>
          </tr>
          {{/vms}}
          {{^vms}}<tr><td colspan="9" class="empty">No VMs known yet: run a discovery.</td></tr>{{/vms}}
          </tbody>
        </table>
        {{#canOperate}}{{#anyRegistrable}}<p><button type="submit" id="register">Register selected</button>
          <span class="hint">Checks each VM and installs the Coffre extension (one Register job per VM).</span></p>{{/anyRegistrable}}{{/canOperate}}
        </form>
        {{/body}}{{/content}}{{/layout}}
        """

    static let protected = """
        {{<layout}}{{$content}}{{#body}}
        <table class="grid" id="item-table">
          <thead><tr><th>VM</th><th>Policy</th><th>State</th><th>Last backup</th><th>Consistency</th><th>Points</th><th></th></tr></thead>
          <tbody>
          {{#items}}
          <tr data-vm="{{vm}}">
            <td>{{vm}}</td><td>{{policy}}</td>
            <td><span class="state state-{{stateCss}}">{{status}}</span></td>
            <td>{{lastBackup}}</td><td>{{consistency}}</td>
            <td><a href="{{pointsHref}}">{{pointCount}} recovery points</a></td>
            <td>{{#canBackup}}{{#canOperate}}<form method="post" action="/protected/backup" class="inline"><input type="hidden" name="vm" value="{{vm}}"><button type="submit" class="backup-now" data-vm="{{vm}}">Back up now</button></form>{{/canOperate}}{{/canBackup}}</td>
          </tr>
          {{/items}}
          {{^items}}<tr><td colspan="7" class="empty">No protected VMs yet.</td></tr>{{/items}}
          </tbody>
        </table>
        {{#hasItems}}<section class="charts" aria-label="Storage by VM">{{{storageChart}}}</section>{{/hasItems}}
        {{#canOperate}}
        <h2>Protect VMs</h2>
        {{#protectable}}{{#hasPolicies}}
        <form method="post" action="/protected/protect" id="protect-form" class="card-form">
          <fieldset><legend>Registered VMs not yet protected</legend>
          {{#candidates}}<label class="check"><input type="checkbox" name="vm" value="{{.}}"> {{.}}</label>{{/candidates}}
          </fieldset>
          <label for="policy">Policy</label>
          <select id="policy" name="policy">{{#policies}}<option value="{{.}}">{{.}}</option>{{/policies}}</select>
          <button type="submit" id="protect">Protect</button>
        </form>
        {{/hasPolicies}}{{^hasPolicies}}<p>No policy yet: <a href="/policies">create one</a> first.</p>{{/hasPolicies}}{{/protectable}}
        {{^protectable}}<p class="hint">Every registered VM is protected. <a href="/vms">Register more VMs</a>.</p>{{/protectable}}
        {{/canOperate}}
        {{/body}}{{/content}}{{/layout}}
        """

    static let nodes = """
        {{<layout}}{{$content}}{{#body}}
        <p>Every <code>coffre serve</code> sharing this catalog. The leader runs the scheduler, retention and the recovery of interrupted jobs; another node takes over when its lease lapses.</p>
        <table class="grid" id="node-table">
          <thead><tr><th>Node</th><th>Address</th><th>Version</th><th>Last heartbeat</th><th>State</th><th>Running jobs</th><th>Leader</th></tr></thead>
          <tbody>
          {{#nodes}}<tr data-node="{{id}}" data-alive="{{alive}}" data-leader="{{leader}}"><td>{{id}}</td><td>{{address}}</td><td>{{version}}</td><td>{{heartbeat}}</td><td class="status-{{state}}">{{state}}</td><td>{{runningJobs}}</td><td>{{#leader}}<strong>leader</strong>{{/leader}}</td></tr>{{/nodes}}
          </tbody>
        </table>
        {{/body}}{{/content}}{{/layout}}
        """

    static let about = """
        {{<layout}}{{$content}}{{#body}}
        <table class="grid" id="about-table">
          <tbody>
          <tr><th scope="row">Version</th><td id="about-version">{{version}}</td></tr>
          <tr><th scope="row">This node</th><td id="about-node">{{node}}</td></tr>
          {{#tls}}
          <tr><th scope="row">HTTPS certificate</th><td id="about-certificate"><code>{{file}}</code>, valid until {{notValidAfter}}</td></tr>
          <tr><th scope="row">SHA-256 fingerprint</th><td><code id="tls-fingerprint">{{fingerprint}}</code></td></tr>
          {{/tls}}
          {{^tls}}
          <tr><th scope="row">HTTPS</th><td id="about-certificate">off: this server speaks plain HTTP</td></tr>
          {{/tls}}
          </tbody>
        </table>
        {{#tls}}<p>Pin this certificate from the command line with <code>coffre --fingerprint {{fingerprint}}</code> (or <code>COFFRE_FINGERPRINT</code>): compare the fingerprint with the one <code>coffre serve</code> printed at start before you trust it.</p>{{/tls}}
        {{/body}}{{/content}}{{/layout}}
        """

    static let policies = """
        {{<layout}}{{$content}}{{#body}}
        <table class="grid" id="policy-table">
          <thead><tr><th>Policy</th><th>Schedule</th><th>Retention</th><th>Verification</th><th>Next run</th><th>Protected VMs</th></tr></thead>
          <tbody>
          {{#policies}}<tr data-policy="{{name}}"><td>{{name}}</td><td>{{schedule}}</td><td>{{retention}}</td><td class="policy-verification">{{verification}}</td><td>{{nextRun}}</td><td>{{items}}</td></tr>{{/policies}}
          {{^policies}}<tr><td colspan="6" class="empty">No policies yet.</td></tr>{{/policies}}
          </tbody>
        </table>
        {{#canOperate}}
        <h2>Create a policy</h2>
        <form method="post" action="/policies" id="policy-form" class="card-form">
          <label for="name">Name</label><input id="name" name="name" required pattern="[A-Za-z0-9._\\-]+" placeholder="nightly">
          <fieldset><legend>Schedule</legend>
            <label class="check"><input type="radio" name="frequency" value="daily" checked id="frequency-daily"> Daily</label>
            <label class="check"><input type="radio" name="frequency" value="weekly" id="frequency-weekly"> Weekly on</label>
            <span id="weekdays">{{#weekdays}}<label class="check"><input type="checkbox" name="weekday" value="{{value}}"> {{label}}</label>{{/weekdays}}</span>
            <label for="time">At</label><input id="time" name="time" type="time" value="22:00" required>
            <label for="timeZone">Time zone</label><input id="timeZone" name="timeZone" value="UTC" required>
          </fieldset>
          <fieldset><legend>Retention</legend>
            <label for="keepDays">Keep every point (days)</label><input id="keepDays" name="keepDays" type="number" min="1" max="9999" value="30" required>
            <label for="keepWeeks">Keep weekly points (weeks)</label><input id="keepWeeks" name="keepWeeks" type="number" min="1">
            <label for="keepMonths">Keep monthly points (months)</label><input id="keepMonths" name="keepMonths" type="number" min="1">
            <label for="keepYears">Keep yearly points (years)</label><input id="keepYears" name="keepYears" type="number" min="1">
          </fieldset>
          <button type="submit" id="create-policy">Create policy</button>
        </form>
        {{/canOperate}}
        {{/body}}{{/content}}{{/layout}}
        """

    static let jobs = """
        {{<layout}}{{$content}}{{#body}}
        <form method="get" action="/jobs" class="toolbar" id="job-filters">
          <label>Type <select name="type"><option value="">All</option>{{#types}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/types}}</select></label>
          <label>Status <select name="status"><option value="">All</option>{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statuses}}</select></label>
          <label>Since <select name="since">{{#since}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/since}}</select></label>
          {{#vm}}<input type="hidden" name="vm" value="{{.}}"> <span class="tag">VM {{.}}</span>{{/vm}}
          {{#day}}<input type="hidden" name="day" value="{{.}}"> <span class="tag" id="day-filter">Started on {{.}} (UTC)</span> <a href="/jobs">clear</a>{{/day}}
          <button type="submit" id="filter">Filter</button>
        </form>
        {{> jobRows}}
        {{/body}}{{/content}}{{/layout}}
        """

    static let job = """
        {{<layout}}{{$content}}{{#body}}
        <div id="job" data-job-id="{{id}}" data-finished="{{finished}}">
        <dl class="facts">
          <dt>Type</dt><dd>{{type}}</dd>
          <dt>VM</dt><dd>{{#vm}}{{.}}{{/vm}}{{^vm}}—{{/vm}}</dd>
          <dt>Status</dt><dd><span id="job-status" class="status status-{{statusCss}}">{{status}}</span>{{#cancelRequested}} <span class="tag">cancel requested</span>{{/cancelRequested}}</dd>
          <dt>Started</dt><dd>{{started}}</dd>
          <dt>Ended</dt><dd id="job-ended">{{ended}}</dd>
          <dt>Duration</dt><dd id="job-duration">{{duration}}</dd>
        </dl>
        <dl class="facts" id="job-details"{{^details}} hidden{{/details}}>{{#details}}<dt>{{key}}</dt><dd>{{value}}</dd>{{/details}}</dl>
        <div id="job-progress-box"{{^progressText}} hidden{{/progressText}}>
          <progress id="job-progress" max="100" value="{{percent}}"></progress> <span id="job-progress-text">{{progressText}}</span>
        </div>
        <div id="job-error"{{^error}} hidden{{/error}}>{{#error}}{{> errorBox}}{{/error}}</div>
        <h2>Steps</h2>
        <table class="grid">
          <thead><tr><th>Step</th><th>Status</th><th>Started</th><th>Duration</th><th>Bytes</th><th>Detail</th></tr></thead>
          <tbody id="job-steps">
          {{#steps}}<tr><td>{{name}}</td><td class="step-{{status}}">{{status}}</td><td>{{started}}</td><td>{{duration}}</td><td>{{bytes}}</td><td>{{detail}}</td></tr>{{/steps}}
          </tbody>
        </table>
        {{#canOperate}}{{^finished}}
        <form method="post" action="{{cancelHref}}" id="cancel-form"><button type="submit" id="cancel-job">Cancel job</button></form>
        {{/finished}}{{/canOperate}}
        {{#pointsHref}}<p><a href="{{pointsHref}}" id="job-points-link">Recovery points of {{vm}}</a></p>{{/pointsHref}}
        <p><a href="/jobs">All jobs</a></p>
        </div>
        {{/body}}{{/content}}{{/layout}}
        """

    static let points = """
        {{<layout}}{{$content}}{{#body}}
        <p>Policy <strong>{{policy}}</strong> · {{state}} · <a href="{{jobsHref}}">jobs of this VM</a></p>
        <section class="charts" aria-label="History">{{{timelineChart}}}{{{runsChart}}}</section>
        <form method="post" action="{{restoreHref}}" id="restore-form">
        <table class="grid" id="point-table">
          <thead><tr><th></th><th>Point</th><th>Taken</th><th>Type</th><th>Consistency</th><th>Expires</th>
            <th class="num">Blocks added</th><th class="num">Only here</th><th class="num">Freed if expired</th><th>Verified</th>{{#canOperate}}<th></th>{{/canOperate}}</tr></thead>
          <tbody>
          {{#points}}
          <tr data-point="{{id}}">
            <td><input type="radio" name="point" value="{{id}}" aria-label="Restore {{id}}"{{#newest}} checked{{/newest}}></td>
            <td>{{id}}</td><td>{{taken}}</td><td>{{type}}{{#tags}} <span class="tag">{{.}}</span>{{/tags}}</td>
            <td title="{{reason}}">{{consistency}}</td><td>{{expires}}</td>
            <td class="num">{{blocksAdded}}</td><td class="num">{{blocksOnlyHere}}</td><td class="num">{{freedIfExpired}}</td>
            <td class="verified"{{#verification}} data-verified="{{outcome}}" title="{{detail}}"{{/verification}}>{{#verification}}<a href="{{jobHref}}"><span class="status status-{{css}}">{{label}}</span></a> {{when}} ({{checks}}){{/verification}}{{^verification}}never{{/verification}}</td>
            {{#canOperate}}<td><a href="{{filesHref}}" class="files-link">Files</a></td>{{/canOperate}}
          </tr>
          {{/points}}
          {{^points}}<tr><td colspan="11" class="empty">No recovery point yet (pending initial backup).</td></tr>{{/points}}
          </tbody>
        </table>
        {{#canOperate}}{{#hasPoints}}
        <h2>Restore</h2>
        <fieldset class="card-form" id="restore-fields">
          <label class="check"><input type="radio" name="destination" value="newVM" checked id="destination-new-vm"> As a new VM named</label>
          <input name="newName" id="newName" value="{{suggestedName}}">
          <label class="check"><input type="checkbox" name="instant" value="yes" id="instant"> Start it at once on the point's disks, copied while it runs (instant restore, libvirt)</label>
          {{#isAdmin}}
          <label class="check"><input type="radio" name="destination" value="folder" id="destination-folder"> To a folder on the server</label>
          <input name="folder" id="folder" placeholder="/srv/restores/web01">
          <select name="format" id="format" aria-label="Disk format"><option value="raw" selected>raw files</option><option value="qcow2">qcow2 images</option></select>
          {{/isAdmin}}
          <button type="submit" id="restore">Restore</button>
        </fieldset>
        <h2>Verify</h2>
        <fieldset class="card-form" id="verify-fields">
          <label class="check"><input type="checkbox" name="check" value="data" checked id="check-data"> Data: every block read back and checked against its hash</label>
          <label class="check"><input type="checkbox" name="check" value="boot" id="check-boot"> Boot: run the point as an isolated VM until its guest agent answers (libvirt)</label>
          <label for="bootCommand">Boot check command in the guest (optional)</label>
          <input name="bootCommand" id="bootCommand" placeholder="systemctl is-system-running --wait">
          <button type="submit" formaction="{{verifyHref}}" id="verify">Verify the selected point</button>
        </fieldset>
        {{/hasPoints}}{{/canOperate}}
        </form>
        {{/body}}{{/content}}{{/layout}}
        """

    static let files = """
        {{<layout}}{{$content}}{{#body}}
        <p><a href="{{pointsHref}}" id="back-to-points">Recovery points</a></p>
        <nav class="crumbs" aria-label="Path" id="crumbs">{{#crumbs}}<a href="{{href}}">{{name}}</a> / {{/crumbs}}</nav>
        {{#folderDownloadHref}}<p><a href="{{folderDownloadHref}}" id="download-folder" download>Download this folder (.tar)</a></p>{{/folderDownloadHref}}
        <table class="grid" id="file-table">
          <thead><tr><th>Name</th><th>Type</th><th>Mode</th><th>Owner</th><th class="num">Size</th><th>Modified</th><th></th></tr></thead>
          <tbody>
          {{#rows}}
          <tr data-name="{{name}}">
            <td>{{#href}}<a href="{{href}}" class="folder-link">{{name}}</a>{{/href}}{{^href}}{{name}}{{/href}}{{#target}} → {{target}}{{/target}}{{#note}} <span class="tag" title="{{note}}">not readable</span>{{/note}}</td>
            <td>{{kind}}</td><td><code>{{mode}}</code></td><td>{{owner}}</td><td class="num">{{size}}</td><td>{{modified}}</td>
            <td>{{#downloadHref}}<a href="{{downloadHref}}" class="download-link" download>Download</a>{{/downloadHref}}</td>
          </tr>
          {{/rows}}
          {{#isEmpty}}<tr><td colspan="7" class="empty">Empty folder.</td></tr>{{/isEmpty}}
          </tbody>
        </table>
        {{/body}}{{/content}}{{/layout}}
        """

    static let started = """
        {{<layout}}{{$content}}{{#body}}
        {{#hasJobs}}<h2>Started</h2>{{> jobRows}}{{/hasJobs}}
        {{#hasErrors}}<h2>Not started</h2>
        {{#errors}}<div class="error-box" role="alert" data-vm="{{vm}}"><p><strong>{{vm}}</strong>: <strong class="code">{{code}}</strong> {{message}}</p>
          {{#workaround}}<p class="workaround">What to do: {{workaround}}</p>{{/workaround}}</div>{{/errors}}
        {{/hasErrors}}
        <p><a href="{{back}}" id="back">Back to {{backLabel}}</a></p>
        {{/body}}{{/content}}{{/layout}}
        """
}
