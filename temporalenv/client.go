package temporalenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Dial connects to the cluster named by cfg (a self-hosted cluster, Temporal Cloud or the dev server),
// with TLS or mTLS when cfg.TLS is enabled and the API key from cfg.APIKeyEnv when that variable is set.
// It fails when the frontend cannot be reached before ctx ends.
func Dial(ctx context.Context, cfg Config, log *slog.Logger) (client.Client, error) {
	opts, err := ClientOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", cfg.Address, err)
	}
	return c, nil
}

// ClientOptions returns the SDK options Dial uses, for callers that need a lazy client or extra options.
func ClientOptions(cfg Config, log *slog.Logger) (client.Options, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := client.Options{
		HostPort:  cfg.Address,
		Namespace: cfg.Namespace,
		// The SDK ships an slog adapter; the component attribute tells SDK lines from ours.
		Logger: sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
	}
	if cfg.TLS.Enabled {
		tlsConfig, err := buildTLSConfig(cfg.TLS)
		if err != nil {
			return client.Options{}, err
		}
		opts.ConnectionOptions.TLS = tlsConfig
	}
	if key := cfg.APIKey(); key != "" {
		// With no TLS configured the SDK turns TLS on by itself, as Temporal Cloud requires.
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
	} else if cfg.APIKeyEnv != "" {
		log.Debug("temporal api key variable is empty; connecting without an api key", "env", cfg.APIKeyEnv)
	}
	return opts, nil
}

func buildTLSConfig(t TLSConfig) (*tls.Config, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read temporal tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal tls ca file %s: no PEM certificate found", t.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load temporal tls client certificate: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	return tlsConfig, nil
}

// EnsureNamespace registers cfg.Namespace with cfg.NamespaceRetention unless it exists already, and
// returns once the frontend accepts calls in it. A namespace created concurrently by someone else counts
// as success.
func EnsureNamespace(ctx context.Context, c client.Client, cfg Config) error {
	svc := c.WorkflowService()
	_, err := svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Namespace})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("describe namespace %s: %w", cfg.Namespace, err)
	}
	_, err = svc.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        cfg.Namespace,
		Description:                      "Flowyard workflows",
		WorkflowExecutionRetentionPeriod: durationpb.New(time.Duration(cfg.NamespaceRetention)),
	})
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("register namespace %s: %w", cfg.Namespace, err)
	}
	return waitNamespaceUsable(ctx, svc, cfg.Namespace)
}

// waitNamespaceUsable polls until the frontend's namespace cache knows a new namespace: it remembers a
// miss for a while, and our own DescribeNamespace just caused one.
func waitNamespaceUsable(ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := svc.CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace})
		if err == nil || !isNotFound(err) {
			return nil // another error (permissions, say) is not ours to judge here
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s registered but not yet usable: %w", namespace, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// EnsureSearchAttributes adds every search attribute of cfg that the namespace lacks. An attribute that
// exists with another type is an error, because workflows would fail to upsert it.
func EnsureSearchAttributes(ctx context.Context, c client.Client, cfg Config) error {
	want, err := cfg.SearchAttributeTypes()
	if err != nil {
		return err
	}
	return ensureSearchAttributes(ctx, c, cfg.Namespace, want)
}

func ensureSearchAttributes(ctx context.Context, c client.Client, namespace string, want map[string]enumspb.IndexedValueType) error {
	if len(want) == 0 {
		return nil
	}
	svc := c.OperatorService()
	list, err := svc.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", namespace, err)
	}
	missing, err := missingSearchAttributes(want, list)
	if err != nil || len(missing) == 0 {
		return err
	}
	_, err = svc.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("add search attributes to %s: %w", namespace, err)
	}
	return nil
}

func missingSearchAttributes(want map[string]enumspb.IndexedValueType, have *operatorservice.ListSearchAttributesResponse) (map[string]enumspb.IndexedValueType, error) {
	missing := map[string]enumspb.IndexedValueType{}
	var conflicts []error
	for _, name := range sortedKeys(want) {
		kind, found := have.GetCustomAttributes()[name]
		if !found {
			kind, found = have.GetSystemAttributes()[name]
		}
		switch {
		case !found:
			missing[name] = want[name]
		case kind != want[name]:
			conflicts = append(conflicts, fmt.Errorf("search attribute %s exists as %s, configured as %s", name, kind, want[name]))
		}
	}
	return missing, errors.Join(conflicts...)
}

// Healthy reports whether the Temporal frontend answers its health check. Without a deadline on ctx it
// gives up after five seconds, so a readiness probe never hangs.
func Healthy(ctx context.Context, c client.Client) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal health check: %w", err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nsNotFound *serviceerror.NamespaceNotFound
	var notFound *serviceerror.NotFound
	return errors.As(err, &nsNotFound) || errors.As(err, &notFound)
}

func isAlreadyExists(err error) bool {
	var nsExists *serviceerror.NamespaceAlreadyExists
	var exists *serviceerror.AlreadyExists
	return errors.As(err, &nsExists) || errors.As(err, &exists)
}
