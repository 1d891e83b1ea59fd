// Command goproxy is the Go baseline of the acr-cache-proxy benchmark: a
// net/http/httputil.ReverseProxy that maps /v2/<name>/... onto
// <upstream>/v2/<prefix>/<name>/... and streams bodies through.
//
// Usage: goproxy -listen 127.0.0.1:8080 -upstream http://127.0.0.1:5000 -prefix hub
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	upstream := flag.String("upstream", "", "upstream origin, e.g. http://127.0.0.1:5000")
	prefix := flag.String("prefix", "hub", "repository prefix on the upstream")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("bad -upstream %q", *upstream)
	}
	// Keep enough idle upstream connections for 64 concurrent clients, and
	// pass bodies through as they are (no transparent gzip).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 256
	transport.MaxIdleConnsPerHost = 256
	transport.DisableCompression = true
	proxy := &httputil.ReverseProxy{
		Transport: transport,
		Director: func(r *http.Request) {
			r.URL.Scheme = target.Scheme
			r.URL.Host = target.Host
			r.Host = target.Host
			if strings.HasPrefix(r.URL.Path, "/v2/") && r.URL.Path != "/v2/" {
				r.URL.Path = "/v2/" + *prefix + "/" + strings.TrimPrefix(r.URL.Path, "/v2/")
				r.URL.RawPath = ""
			}
		},
	}
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
