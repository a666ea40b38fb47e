using System.Net;
using System.Text.Json;
using EbpfProxy.Core.Health;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Observability;
using LibBpf.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace EbpfProxy.Daemon;

/// <summary>
/// All of the daemon's own HTTP on one Kestrel host (the per-service health-check node ports stay
/// separate listeners, ServiceHealthServers): on --healthz-bind-address (kube-proxy's 10256)
/// GET /healthz and /livez (200 while syncs keep the datapath current, 503 otherwise, with a JSON
/// body naming the last update) and GET /status (what `ebpf-proxy status` prints); on
/// --metrics-bind-address (kube-proxy's 10249) GET /metrics in Prometheus text format, from the
/// OpenTelemetry Prometheus exporter. When both addresses are the same, every route is on it.
/// A port that cannot be bound is logged and the proxy runs on without that endpoint: the
/// datapath matters more than its observability.
/// </summary>
public sealed partial class DaemonHttpServer(
    ProxyHealth health, ProxyStatus status, ProxyOptions options, DatapathOptions datapathOptions, DatapathMetrics datapathMetrics,
    ILoggerFactory loggers, IServiceProvider services) : IHostedService, IAsyncDisposable
{
    private readonly ILogger _logger = loggers.CreateLogger<DaemonHttpServer>();
    private WebApplication? _app;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var healthz = string.IsNullOrEmpty(options.HealthzBindAddress) ? null : ParseEndpoint(options.HealthzBindAddress, "--healthz-bind-address");
        var metrics = string.IsNullOrEmpty(options.MetricsBindAddress) ? null : ParseEndpoint(options.MetricsBindAddress, "--metrics-bind-address");
        var endpoints = new[] { healthz, metrics }.OfType<IPEndPoint>().Distinct().ToList();
        if (endpoints.Count == 0)
            return;

        // An empty builder: no configuration sources (no appsettings watch), no logging of its own
        // (the daemon's), only Kestrel and routing.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddSingleton(loggers);
        builder.Services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            foreach (var ep in endpoints)
                k.Listen(ep);
        });
        var app = builder.Build();
        app.UseRouting();
        bool OnHealthz(HttpContext c) => healthz is not null && c.Connection.LocalPort == healthz.Port;
        bool OnMetrics(HttpContext c) => metrics is not null && c.Connection.LocalPort == metrics.Port;
        if (metrics is not null && services.GetService<MeterProvider>() is { } meterProvider)
        {
            app.UseOpenTelemetryPrometheusScrapingEndpoint(meterProvider,
                c => OnMetrics(c) && c.Request.Path == "/metrics", path: null, configureBranchedPipeline: null, optionsName: null);
        }
        app.MapGet("/healthz", (HttpContext c) => OnHealthz(c) ? Health() : Results.NotFound());
        app.MapGet("/livez", (HttpContext c) => OnHealthz(c) ? Health() : Results.NotFound());
        app.MapGet("/status", (HttpContext c) => OnHealthz(c) ? Status() : Results.NotFound());
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            LogBindFailed(_logger, ex, string.Join(", ", endpoints));
            await app.DisposeAsync().ConfigureAwait(false);
            return;
        }
        _app = app;
        if (healthz is not null)
            LogListening(_logger, "/healthz, /livez, /status", healthz.ToString());
        if (metrics is not null)
            LogListening(_logger, "/metrics", metrics.ToString());
    }

    private IResult Health()
    {
        var report = health.Evaluate();
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
        {
            ["lastUpdated"] = report.LastUpdated?.ToString("O"),
            ["currentTime"] = report.CurrentTime.ToString("O"),
            ["nodeEligible"] = true,
            ["problem"] = report.Problem,
        });
        return Results.Text(body, "application/json", statusCode: report.Healthy ? 200 : 503);
    }

    private IResult Status()
    {
        var usage = datapathMetrics.Usage;
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            health = health.Evaluate(),
            status = status.Current,
            version = DaemonTelemetry.Version,
            maps = usage.Maps,
            mapsWalkedAt = usage.At,
            attachments = Attachments(),
        }, StatusJson);
        return Results.Bytes(body, "application/json");
    }

    /// <summary>What the kernel has attached (read from it on each request: `status` is an operator's call, not a scrape).</summary>
    private IReadOnlyList<AttachedHook> Attachments()
    {
        try
        {
            return AttachmentInspector.Read(datapathOptions.PinPath);
        }
        catch (Exception ex) when (ex is BpfException or IOException or UnauthorizedAccessException)
        {
            LogAttachmentsUnreadable(_logger, ex);
            return [];
        }
    }

    internal static readonly JsonSerializerOptions StatusJson = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };

    /// <summary>"0.0.0.0:10256" listens on every address; "ADDR:PORT" on one.</summary>
    internal static IPEndPoint ParseEndpoint(string bindAddress, string option)
    {
        if (!IPEndPoint.TryParse(bindAddress, out var ep) || ep.Port == 0)
            throw new ArgumentException($"{option} '{bindAddress}' is not ADDR:PORT");
        return ep;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is { } app)
            await app.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is { } app)
            await app.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "HTTP {Routes} listening on {Address}")]
    private static partial void LogListening(ILogger logger, string routes, string address);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "/status could not read the attached programs")]
    private static partial void LogAttachmentsUnreadable(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 21, Level = LogLevel.Error, Message = "The daemon's HTTP endpoints could not listen on {Address}; the proxy runs without them")]
    private static partial void LogBindFailed(ILogger logger, Exception ex, string address);
}
