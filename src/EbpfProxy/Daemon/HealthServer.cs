using System.Net;
using System.Text.Json;
using EbpfProxy.Core.Health;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// The proxy's health endpoint (kube-proxy serves it on port 10256): GET /healthz and /livez
/// answer 200 while syncs keep the datapath up to date and 503 otherwise, with a JSON body
/// naming the last update; GET /status reports what `ebpf-proxy status` prints (the last sync,
/// objects that could not be programmed, policy failing closed). HttpListener rather than Kestrel
/// keeps the daemon's footprint small for a few fixed routes.
/// </summary>
public sealed partial class HealthServer : BackgroundService
{
    private readonly ProxyHealth _health;
    private readonly ProxyOptions _options;
    private readonly ILogger _logger;

    private readonly ProxyStatus _status;

    public HealthServer(ProxyHealth health, ProxyStatus status, ProxyOptions options, ILogger<HealthServer> logger)
    {
        _status = status;
        _health = health;
        _options = options;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (string.IsNullOrEmpty(_options.HealthzBindAddress))
            return;
        using var listener = new HttpListener();
        listener.Prefixes.Add(Prefix(_options.HealthzBindAddress));
        try
        {
            listener.Start();
        }
        catch (HttpListenerException ex)
        {
            LogBindFailed(_logger, ex, _options.HealthzBindAddress);
            return;
        }
        LogListening(_logger, _options.HealthzBindAddress);
        using var reg = stoppingToken.Register(listener.Stop);
        while (!stoppingToken.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (HttpListenerException ex)
            {
                LogRequestFailed(_logger, ex);
                continue;
            }
            Respond(context);
        }
    }

    private void Respond(HttpListenerContext context)
    {
        using var response = context.Response;
        var path = context.Request.Url?.AbsolutePath;
        if (path == "/status")
        {
            var status = JsonSerializer.SerializeToUtf8Bytes(new { health = _health.Evaluate(), status = _status.Current }, StatusJson);
            response.StatusCode = 200;
            response.ContentType = "application/json";
            response.ContentLength64 = status.Length;
            response.OutputStream.Write(status);
            return;
        }
        if (path is not ("/healthz" or "/livez"))
        {
            response.StatusCode = 404;
            return;
        }
        var report = _health.Evaluate();
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
        {
            ["lastUpdated"] = report.LastUpdated?.ToString("O"),
            ["currentTime"] = report.CurrentTime.ToString("O"),
            ["nodeEligible"] = true,
            ["problem"] = report.Problem,
        });
        response.StatusCode = report.Healthy ? 200 : 503;
        response.ContentType = "application/json";
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
    }

    internal static readonly JsonSerializerOptions StatusJson = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };

    /// <summary>"0.0.0.0:10256" listens on every address; "ADDR:PORT" on one.</summary>
    internal static string Prefix(string bindAddress)
    {
        if (!IPEndPoint.TryParse(bindAddress, out var ep) || ep.Port == 0)
            throw new ArgumentException($"--healthz-bind-address '{bindAddress}' is not ADDR:PORT");
        var host = ep.Address.Equals(IPAddress.Any) || ep.Address.Equals(IPAddress.IPv6Any) ? "*" : ep.Address.ToString();
        return $"http://{host}:{ep.Port}/";
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Health endpoint (/healthz, /livez) listening on {Address}")]
    private static partial void LogListening(ILogger logger, string address);

    [LoggerMessage(EventId = 21, Level = LogLevel.Error, Message = "Health endpoint could not listen on {Address}; the proxy runs without it")]
    private static partial void LogBindFailed(ILogger logger, Exception ex, string address);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Health request failed")]
    private static partial void LogRequestFailed(ILogger logger, Exception ex);
}
