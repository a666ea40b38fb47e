using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Observability;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace EbpfProxy.Daemon;

/// <summary>
/// The daemon's OpenTelemetry set-up: one MeterProvider over the proxy's SLIs (<see cref="ProxyMetrics"/>),
/// the datapath's counters and map fill (<see cref="DatapathMetrics"/>), and .NET runtime and process
/// metrics; exported in Prometheus text format on /metrics (<see cref="DaemonHttpServer"/>) and, when the
/// standard OTEL_EXPORTER_OTLP_ENDPOINT is set, over OTLP together with the sync traces.
/// </summary>
internal static class DaemonTelemetry
{
    /// <summary>The ActivitySource of sync and policy passes (exported only over OTLP).</summary>
    public static ActivitySource Source { get; } = new("EbpfProxy", Version);

    public static string Version { get; } =
        typeof(DaemonTelemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>Whether the OTLP exporters are on (the standard variable is set).</summary>
    public static bool OtlpEnabled => !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));

    public static IServiceCollection AddDaemonTelemetry(this IServiceCollection services, ProxyOptions options, DatapathOptions datapath)
    {
        services.AddMetrics();
        // Instruments are created once, through the host's IMeterFactory.
        services.AddSingleton(sp => new ProxyMetrics(sp.GetRequiredService<IMeterFactory>()));
        services.AddSingleton(sp => new DatapathMetrics(datapath.PinPath, sp.GetRequiredService<IMeterFactory>(), sp.GetRequiredService<ProxyMetrics>()));
        services.AddHostedService<MapUsageRefresher>();

        bool prometheus = !string.IsNullOrEmpty(options.MetricsBindAddress);
        bool otlp = OtlpEnabled;
        if (!prometheus && !otlp)
            return services;
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("ebpf-proxy", serviceVersion: Version, serviceInstanceId: options.NodeName));
        otel.WithMetrics(m =>
        {
            m.AddMeter(ProxyMetrics.MeterName, DatapathMetrics.MeterName)
                .AddRuntimeInstrumentation()
                .AddProcessInstrumentation();
            if (prometheus)
                m.AddPrometheusExporter();
            if (otlp)
                m.AddOtlpExporter();
        });
        if (otlp)
            otel.WithTracing(t => t.AddSource(Source.Name).AddOtlpExporter());
        return services;
    }
}
