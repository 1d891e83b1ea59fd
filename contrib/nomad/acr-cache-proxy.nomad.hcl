# acr-cache-proxy on every Nomad client: one instance per node, listening on
# that node's loopback interface only, for the node's Docker daemon to use as
# a Docker Hub mirror:
#   /etc/docker/daemon.json: { "registry-mirrors": ["http://127.0.0.1:8080"] }
#
#   nomad job run contrib/nomad/acr-cache-proxy.nomad.hcl
#
# Needs Nomad 1.5 or later (datacenter wildcards, Nomad-native service checks).
#
# Build the image from the repository's Dockerfile and push it to a registry
# the clients can pull from without this mirror (the ACR itself works well).
job "acr-cache-proxy" {
  # A system job places one allocation on every eligible client, including
  # clients that join later.
  type        = "system"
  datacenters = ["*"]

  group "proxy" {
    # Replace the allocations of a new job version one node at a time. The
    # mirror setting is fail-safe, so a node whose proxy is restarting pulls
    # from Docker Hub directly for a moment.
    update {
      max_parallel = 1
    }

    network {
      mode = "host"

      # Reserves the port on the node so nothing else is scheduled onto it.
      port "http" {
        static = 8080
      }
    }

    service {
      name     = "acr-cache-proxy"
      provider = "nomad"
      port     = "http"

      # The proxy is bound to loopback, so the service address is too. With a
      # custom address the check below inherits it: the Nomad client probes
      # http://127.0.0.1:8080/healthz on its own node.
      address = "127.0.0.1"

      check {
        name     = "healthz"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 5
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "acr-cache-proxy" {
      driver = "docker"

      config {
        image        = "example.azurecr.io/tools/acr-cache-proxy:0.1.0"
        network_mode = "host"

        # Loopback only: a registry mirror cannot authenticate its clients.
        # The shutdown grace must stay below kill_timeout (see below).
        args = [
          "--listen-address", "127.0.0.1:8080",
          "--shutdown-grace", "25",
        ]

        # Hardening. The only writes are the code cache compiled Deno programs
        # keep in /tmp, hence the small tmpfs.
        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]

        mount {
          type     = "tmpfs"
          target   = "/tmp"
          readonly = false
          tmpfs_options {
            size = 16777216
          }
        }
      }

      env {
        # Registry login server and artifact cache rule prefix: with "hub",
        # docker.io/library/nginx is served from hub/library/nginx.
        ACR_CACHE_PROXY_UPSTREAM_DOMAIN = "example.azurecr.io"
        ACR_CACHE_PROXY_UPSTREAM_PREFIX = "hub"
        ACR_CACHE_PROXY_LOG_FORMAT      = "json"

        # Sign in with the node's managed identity (it needs AcrPull on the
        # registry). AZURE_CLIENT_ID picks a user-assigned identity; remove it
        # to use the system-assigned one. Pinning the credential type keeps
        # @azure/identity from trying other sign-in methods first.
        AZURE_TOKEN_CREDENTIALS = "ManagedIdentityCredential"
        AZURE_CLIENT_ID         = "00000000-0000-0000-0000-000000000000"
      }

      # SIGTERM starts a graceful shutdown that waits up to --shutdown-grace
      # (25 s above) for in-flight pulls; Nomad must wait longer than that
      # before it sends SIGKILL. Clients cap kill_timeout at their
      # max_kill_timeout (30 s unless configured), so raise that in the
      # client configuration before raising either value here.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
