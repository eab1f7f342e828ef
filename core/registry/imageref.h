/*
 * imageref.h — Docker image references ("registry:5000/team/app:tag").
 *
 * The grammar is the one of distribution/reference, which the engine and
 * every registry use:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] component ( "/" component )*
 *   domain     := host [ ":" port ]       (host: DNS name, IPv4 or [IPv6])
 *   component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest     := algorithm ":" hex{32,}
 *
 * The first component is a domain when it holds "." or ":", is
 * "localhost", or has upper case letters; otherwise the image lives on
 * Docker Hub.  A name is at most 255 characters.
 */
#ifndef SP_IMAGEREF_H
#define SP_IMAGEREF_H

#include <stddef.h>

struct sp_error;

struct sp_imageref {
	char *domain;  /* "" for Docker Hub (no domain written) */
	char *path;    /* "team/app"; never empty */
	char *tag;     /* "" when absent */
	char *digest;  /* "" when absent */
};

/*
 * Parses s into out (fields owned by out; release with
 * sp_imageref_release).  On error returns SP_ECONFIG with the reason in
 * err ("repository name must be lowercase"); out is then empty.
 */
int sp_imageref_parse(struct sp_imageref *out, const char *s, struct sp_error *err);
void sp_imageref_release(struct sp_imageref *ref);

/* The registry host a reference is pushed to: its domain or "docker.io". */
const char *sp_imageref_registry(const struct sp_imageref *ref);

#endif
