package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

func (c *tcConfig) bindObservability(fs *pflag.FlagSet) {
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "HTTP address serving Prometheus /metrics, e.g. 127.0.0.1:9091; empty is off (GTX_METRICS_LISTEN)")
	fs.StringVar(&c.MetricsTokenFile, "metrics-token-file", c.MetricsTokenFile, "file holding a bearer token /metrics then requires (Prometheus authorization.credentials_file) (GTX_METRICS_TOKEN_FILE)")
	fs.StringVar(&c.HealthListen, "health-listen", c.HealthListen, "plaintext gRPC address serving only the health service, for probes that cannot use TLS (a kubelet's); empty is off (GTX_HEALTH_LISTEN)")
	fs.DurationVar(&c.HealthInterval, "health-interval", c.HealthInterval, "how often the store is pinged for gRPC health (GTX_HEALTH_INTERVAL)")
	fs.StringVar(&c.TraceExporter, "trace-exporter", c.TraceExporter, "OpenTelemetry span exporter: none, stdout or otlp (GTX_TRACE_EXPORTER)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", c.OTLPEndpoint, "OTLP/gRPC collector host:port for --trace-exporter otlp; empty takes OTEL_EXPORTER_OTLP_ENDPOINT (GTX_OTLP_ENDPOINT)")
}

// observability is what `gtx tc` hands the coordinator for metrics and
// traces, and how it stops them.
type observability struct {
	metrics prometheus.Registerer
	tracer  trace.TracerProvider
	stop    func(ctx context.Context)
}

// startObservability starts the metrics listener and the tracer provider
// the configuration asks for.
func startObservability(ctx context.Context, c tcConfig, log *slog.Logger) (*observability, error) {
	if c.HealthInterval <= 0 {
		return nil, fmt.Errorf("--health-interval must be positive, got %v", c.HealthInterval)
	}
	o := &observability{}
	var stops []func(context.Context)
	o.stop = func(ctx context.Context) {
		for _, s := range stops {
			s(ctx)
		}
	}
	if c.MetricsListen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		lis, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("metrics: listen on %s: %w", c.MetricsListen, err)
		}
		var h http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		if c.MetricsTokenFile != "" {
			tok, err := os.ReadFile(c.MetricsTokenFile)
			if err != nil || len(bytes.TrimSpace(tok)) == 0 {
				lis.Close()
				return nil, fmt.Errorf("metrics: read --metrics-token-file: %v (want a file holding the token)", err)
			}
			h = bearer(bytes.TrimSpace(tok), h)
		} else if !isLoopback(c.MetricsListen) {
			log.Warn("metrics listener beyond loopback without --metrics-token-file: anyone who reaches it reads the coordinator's metrics", "listen", c.MetricsListen)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", h)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "err", err)
			}
		}()
		stops = append(stops, func(ctx context.Context) {
			_ = hs.Shutdown(ctx)
			<-done
		})
		o.metrics = reg
		log.Info("metrics serving", "listen", lis.Addr().String())
	}
	var exp sdktrace.SpanExporter
	switch c.TraceExporter {
	case "", "none":
	case "stdout":
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			o.stop(ctx)
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		exp = e
	case "otlp":
		var opts []otlptracegrpc.Option
		if c.OTLPEndpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(c.OTLPEndpoint), otlptracegrpc.WithInsecure())
		}
		e, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			o.stop(ctx)
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		exp = e
	default:
		o.stop(ctx)
		return nil, fmt.Errorf("--trace-exporter %q: want none, stdout or otlp", c.TraceExporter)
	}
	if exp != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(resource.NewSchemaless(
			semconv.ServiceName("gtx-tc"), semconv.ServiceInstanceID(c.ServerID))))
		stops = append(stops, func(ctx context.Context) { _ = tp.Shutdown(ctx) })
		o.tracer = tp
	}
	return o, nil
}

// bearer serves next only to requests carrying "Authorization: Bearer
// token", compared in constant time.
func bearer(token []byte, next http.Handler) http.Handler {
	want := append([]byte("Bearer "), token...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "metrics need the bearer token of --metrics-token-file", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
