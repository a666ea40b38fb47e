using System.Net;
using System.Text.Json;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Translation;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// One HTTP server per health check node port (LoadBalancer services with eTP Local), as
/// kube-proxy runs them: 200 while this node has a local ready endpoint and the proxy is healthy,
/// 503 otherwise, with a JSON body naming the service and its local endpoint count. Reconciled
/// after every successful sync; a port that cannot be bound is reported and retried next time.
/// </summary>
public sealed partial class ServiceHealthServers : IDisposable
{
    private sealed class Server(HttpListener listener, HealthCheckTarget target)
    {
        public HttpListener Listener { get; } = listener;
        public volatile HealthCheckTarget Target = target;
    }

    private readonly Dictionary<ushort, Server> _servers = new();
    private readonly ProxyHealth _proxyHealth;
    private readonly ILogger _logger;

    public ServiceHealthServers(ProxyHealth proxyHealth, ILogger logger)
    {
        _proxyHealth = proxyHealth;
        _logger = logger;
    }

    public IReadOnlyCollection<ushort> Ports => _servers.Keys;

    public void Update(IReadOnlyCollection<HealthCheckTarget> targets)
    {
        var wanted = targets.GroupBy(t => t.Port).ToDictionary(g => g.Key, g => g.First());
        foreach (var port in _servers.Keys.Where(p => !wanted.ContainsKey(p)).ToList())
        {
            _servers[port].Listener.Close();
            _servers.Remove(port);
            LogStopped(_logger, port);
        }
        foreach (var (port, target) in wanted)
        {
            if (_servers.TryGetValue(port, out var existing))
            {
                existing.Target = target;
                continue;
            }
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://*:{port}/");
            try
            {
                listener.Start();
            }
            catch (HttpListenerException ex)
            {
                LogBindFailed(_logger, ex, port, $"{target.Namespace}/{target.Name}");
                listener.Close();
                continue;
            }
            var server = new Server(listener, target);
            _servers[port] = server;
            _ = ServeAsync(server);
            LogStarted(_logger, port, $"{target.Namespace}/{target.Name}");
        }
    }

    private async Task ServeAsync(Server server)
    {
        while (server.Listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await server.Listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }
            var t = server.Target;
            bool proxyHealthy = _proxyHealth.Evaluate().Healthy;
            var body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                service = new { @namespace = t.Namespace, name = t.Name },
                localEndpoints = t.LocalEndpoints,
                serviceProxyHealthy = proxyHealthy,
            });
            using var response = context.Response;
            response.StatusCode = t.LocalEndpoints > 0 && proxyHealthy ? 200 : 503;
            response.ContentType = "application/json";
            response.ContentLength64 = body.Length;
            try
            {
                response.OutputStream.Write(body);
            }
            catch (HttpListenerException)
            {
                // Client went away.
            }
        }
    }

    public void Dispose()
    {
        foreach (var s in _servers.Values)
            s.Listener.Close();
        _servers.Clear();
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Serving the health check node port {Port} of {Service}")]
    private static partial void LogStarted(ILogger logger, ushort port, string service);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Stopped the health check node port {Port}")]
    private static partial void LogStopped(ILogger logger, ushort port);

    [LoggerMessage(EventId = 32, Level = LogLevel.Error, Message = "Could not serve the health check node port {Port} of {Service}; retried after the next sync")]
    private static partial void LogBindFailed(ILogger logger, Exception ex, ushort port, string service);
}
