#ifndef CMICROHTTPD_SHIM_H
#define CMICROHTTPD_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <gnutls/gnutls.h>

/// Everything `cmhd_start_daemon` passes to libmicrohttpd as options. Zero / NULL means "leave
/// libmicrohttpd's default". The TLS strings are PEM text and are copied by libmicrohttpd.
typedef struct cmhd_daemon_options {
    const struct sockaddr *bind_address;   /* NULL: every address (dual stack) on `port` */
    unsigned int connection_timeout;       /* seconds an idle connection may stay open */
    unsigned int connection_limit;         /* concurrent connections accepted */
    unsigned int per_ip_connection_limit;  /* concurrent connections per client address */
    size_t connection_memory_limit;        /* bytes for one connection's headers and buffers */
    MHD_RequestCompletedCallback completed;/* frees per-request state stored in `*con_cls` */
    void *completed_cls;
    const char *tls_key_pem;
    const char *tls_cert_pem;
    const char *tls_client_ca_pem;         /* set: clients may present certificates */
    const char *tls_priorities;            /* GnuTLS priority string, e.g. minimum version */
} cmhd_daemon_options;

/// Swift cannot call the variadic `MHD_start_daemon`, and `MHD_start_daemon_va` would need exact C
/// widths per option. This typed wrapper builds an `MHD_OPTION_ARRAY` from the struct instead, so
/// the compiler checks every width.
static inline struct MHD_Daemon *
cmhd_start_daemon(unsigned int flags, uint16_t port, MHD_AccessHandlerCallback handler,
                  void *handler_cls, const cmhd_daemon_options *o)
{
    struct MHD_OptionItem items[12];
    int n = 0;
    if (o->bind_address != NULL) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, (void *)o->bind_address };
    }
    if (o->connection_timeout > 0) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->connection_timeout, NULL };
    }
    if (o->connection_limit > 0) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->connection_limit, NULL };
    }
    if (o->per_ip_connection_limit > 0) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)o->per_ip_connection_limit, NULL };
    }
    if (o->connection_memory_limit > 0) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)o->connection_memory_limit, NULL };
    }
    if (o->completed != NULL) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)o->completed, o->completed_cls };
    }
    if (o->tls_key_pem != NULL && o->tls_cert_pem != NULL) {
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key_pem };
        items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert_pem };
        if (o->tls_client_ca_pem != NULL) {
            items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)o->tls_client_ca_pem };
        }
        if (o->tls_priorities != NULL) {
            items[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)o->tls_priorities };
        }
    }
    items[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_ARRAY, items, MHD_OPTION_END);
}

/// The port the daemon listens on (useful after binding port 0). `MHD_get_daemon_info` is
/// variadic and therefore unavailable in Swift.
static inline uint16_t
cmhd_bound_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/// The client certificate of a TLS connection: -2 not TLS, 0 none presented, 1 presented and
/// verified against the daemon's trusted CA (`MHD_OPTION_HTTPS_MEM_TRUST`), -1 presented but not
/// valid. libmicrohttpd asks for a certificate but leaves the verdict to the application.
static inline int
cmhd_client_certificate_status(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == NULL || info->tls_session == NULL) return -2;
    gnutls_session_t session = (gnutls_session_t)info->tls_session;
    unsigned int count = 0;
    if (gnutls_certificate_get_peers(session, &count) == NULL || count == 0) return 0;
    unsigned int status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status != 0) return -1;
    return 1;
}

#endif
