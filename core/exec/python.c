/*
 * python.c — finds the interpreter of a pytest stage; see python.h.
 *
 * Why in the container rather than reading the image: the lookup must
 * agree with the engine's (the image's ENV merged with the stage's env,
 * symlinks, venvs, permissions for the stage's user), and whether pytest
 * is installed can only be told by the interpreter itself: site-packages,
 * .pth files, PYTHONPATH and --system-site-packages venvs all decide it.
 * Doing it in the test container itself costs one interpreter start
 * (two when `python` is on PATH too) instead of a container per
 * candidate.
 */
#include "core/exec/python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

/*
 * Valid for Python 2.7 too: `python` may be Python 2, which must still
 * say what it is.  find_spec does not import.  The text is
 * `S = r'''BODY'''` then `exec(S)`, so that the body can execute the
 * same text again in another interpreter (os.execv keeps the container,
 * and argv[0] the full path, so sys.executable is right); BODY holds no
 * three quotes and no non-ASCII byte (test_python_pure checks).
 */
const char sp_python_boot_script[] =
	"S = r'''import os, sys\n"
	"def _sp_boot():\n"
	"    a = sys.argv\n"
	"    # MODE: cov=1,explicit=0,hop=0,as=NAME (as last: its value may hold a comma)\n"
	"    m = dict(w.split('=', 1) for w in a[1].split(',', 3))\n"
	"    del a[1]\n"
	"    cov, explicit = m.get('cov') == '1', m.get('explicit') == '1'\n"
	"    hop, cand = int(m.get('hop', '0')), m.get('as', '')\n"
	"    py2 = sys.version_info[0] < 3\n"
	"    w = sys.stdout.write\n"
	"    def hop_to(name, h):\n"
	"        for d in os.environ.get('PATH', '').split(os.pathsep):\n"
	"            p = os.path.join(d, name)\n"
	"            if d and os.path.isfile(p) and os.access(p, os.X_OK):\n"
	"                q = \"'\" * 3\n"
	"                try:\n"
	"                    os.execv(p, [p, '-c', 'S = r' + q + S + q + '\\nexec(S)\\n',\n"
	"                                 'cov=%d,explicit=0,hop=%d,as=%s' % (cov, h, name)] + a[1:])\n"
	"                except OSError:\n"
	"                    return\n"
	"    if not explicit and hop == 0:\n"
	"        hop_to('python', 1)\n"
	"    if py2 and not explicit and hop < 2:\n"
	"        hop_to('python3', 2)\n"
	"    def f(mod, dist):\n"
	"        try:\n"
	"            import importlib.util\n"
	"            if importlib.util.find_spec(mod) is None:\n"
	"                return ''\n"
	"        except ImportError:\n"
	"            try:\n"
	"                import imp\n"
	"                imp.find_module(mod)\n"
	"            except Exception:\n"
	"                return ''\n"
	"        except Exception:\n"
	"            return ''\n"
	"        try:\n"
	"            from importlib.metadata import version\n"
	"            return version(dist)\n"
	"        except Exception:\n"
	"            return '?'\n"
	"    pt, pc = f('pytest', 'pytest'), f('pytest_cov', 'pytest-cov')\n"
	"    for k, v in (('executable', sys.executable),\n"
	"                 ('version', '%d.%d.%d' % tuple(sys.version_info[:3])),\n"
	"                 ('pytest', pt), ('pytest_cov', pc),\n"
	"                 ('path', os.environ.get('PATH', '')), ('as', cand)):\n"
	"        w('stagepipe-probe: %s=%s\\n' % (k, v))\n"
	"    if (py2 and not explicit) or not pt or (cov and not pc):\n"
	"        w('stagepipe-probe: stop\\n')\n"
	"        sys.stdout.flush()\n"
	"        sys.exit(121)\n"
	"    w('stagepipe-probe: go\\n')\n"
	"    sys.stdout.flush()\n"
	"    if sys.path and sys.path[0] == '':\n"
	"        sys.path[0] = os.getcwd()\n"
	"    import runpy\n"
	"    runpy.run_module('pytest', run_name='__main__', alter_sys=True)\n"
	"_sp_boot()\n"
	"'''\n"
	"exec(S)\n";

/* Longest value kept from a probe line (a PATH may be long; a hostile
 * image may print anything). */
#define VALUE_MAX 4096

void sp_python_info_release(struct sp_python_info *info)
{
	if (!info)
		return;
	free(info->executable);
	free(info->version);
	free(info->pytest);
	free(info->pytest_cov);
	free(info->path);
	free(info->as);
	memset(info, 0, sizeof(*info));
}

static void set_value(char **slot, const char *v, size_t len, bool empty_is_null)
{
	free(*slot);
	*slot = NULL;
	if (len > VALUE_MAX)
		len = VALUE_MAX;
	if (len == 0 && empty_is_null)
		return;
	*slot = sp_xstrndup(v, len);
}

void sp_python_info_feed(struct sp_python_info *info, const char *line, size_t len)
{
	static const size_t mlen = sizeof(SP_PYTHON_PROBE_MARK) - 1;
	const char *key, *eq, *val;
	size_t klen, vlen;

	if (len < mlen || memcmp(line, SP_PYTHON_PROBE_MARK, mlen) != 0)
		return;
	key = line + mlen;
	eq = memchr(key, '=', len - mlen);
	if (!eq)
		return;
	klen = (size_t)(eq - key);
	val = eq + 1;
	vlen = len - mlen - klen - 1;
	if (vlen && val[vlen - 1] == '\r')
		vlen--;
	info->seen = true;
#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(key, s, klen))
	if (KEY("executable"))
		set_value(&info->executable, val, vlen, true);
	else if (KEY("version"))
		set_value(&info->version, val, vlen, true);
	else if (KEY("pytest"))
		set_value(&info->pytest, val, vlen, true);
	else if (KEY("pytest_cov"))
		set_value(&info->pytest_cov, val, vlen, true);
	else if (KEY("path"))
		set_value(&info->path, val, vlen, false);
	else if (KEY("as"))
		set_value(&info->as, val, vlen, true);
#undef KEY
}

char *sp_python_boot_mode(const struct sp_stage *st, const char *cand, unsigned hop)
{
	return sp_xasprintf("cov=%d,explicit=%d,hop=%u,as=%s", sp_stage_measures_coverage(st),
			    st->python != NULL, hop, cand);
}

/* A line that is exactly what (a trailing '\r' allowed). */
static bool is_line(const char *line, size_t len, const char *what)
{
	size_t n = strlen(what);

	if (len == n + 1 && line[n] == '\r')
		len--;
	return len == n && !memcmp(line, what, n);
}

bool sp_python_boot_feed(struct sp_python_boot *b, enum sp_log_stream stream, const char *line,
			 size_t len)
{
	static const size_t mlen = sizeof(SP_PYTHON_PROBE_MARK) - 1;

	if (b->state != SP_PYTHON_BOOTING || stream != SP_STREAM_STDOUT || len < mlen ||
	    memcmp(line, SP_PYTHON_PROBE_MARK, mlen) != 0)
		return false;
	if (is_line(line, len, SP_PYTHON_GO))
		b->state = SP_PYTHON_RUNNING;
	else if (is_line(line, len, SP_PYTHON_STOP))
		b->state = SP_PYTHON_STOPPED;
	else
		sp_python_info_feed(&b->info, line, len);
	return true;
}

char *sp_python_image_name(const char *target, const char *image_id)
{
	const char *id = image_id ? image_id : "";

	if (!strncmp(id, "sha256:", 7))
		return sp_xasprintf("the image of target \"%s\" (%.19s)", target ? target : "",
				    id);
	return sp_xasprintf("the image of target \"%s\" (%s)", target ? target : "", id);
}

/* "/usr/bin/python3 (Python 3.11.2, python3 on the image's PATH)" */
static void who(struct sp_buf *b, const struct sp_python_info *info, const struct sp_stage *st,
		const char *candidate)
{
	(void)sp_buf_addf(b, "%s (", info->executable ? info->executable : candidate);
	if (info->version)
		(void)sp_buf_addf(b, "Python %s, ", info->version);
	if (st->python)
		(void)sp_buf_addf(b, "the stage's python: %s)", candidate);
	else
		(void)sp_buf_addf(b, "%s on the image's PATH)", candidate);
}

int sp_python_check(const struct sp_python_info *info, const struct sp_stage *st,
		    const char *candidate, const char *image, struct sp_error *err)
{
	struct sp_buf b = SP_BUF_INIT;
	int rc = 0;

	if (!info->seen)
		return 0;
	if (!info->pytest) {
		(void)sp_buf_addf(&b, "no pytest in %s: ", image);
		who(&b, info, st, candidate);
		(void)sp_buf_addf(&b, " cannot import pytest; install pytest in that target%s",
				  st->python ? ", or point python: at an interpreter that has it" :
				  ", or set python: in stage \"");
		if (!st->python)
			(void)sp_buf_addf(&b, "%s\" to an interpreter that has it", st->name);
		rc = sp_error_set(err, SP_EFAILED, "%s", b.data);
	} else if (!info->pytest_cov && sp_stage_measures_coverage(st)) {
		(void)sp_buf_addf(&b, "--cov needs the pytest-cov plugin, which ");
		who(&b, info, st, candidate);
		(void)sp_buf_addf(&b, " in %s cannot import; install pytest-cov in that target, "
				  "or drop --cov (and coverage.min) from stage \"%s\"", image,
				  st->name);
		rc = sp_error_set(err, SP_EFAILED, "%s", b.data);
	}
	sp_buf_release(&b);
	return rc;
}

bool sp_python_exec_missing(const char *why)
{
	const char *e = why ? strstr(why, "exec: ") : NULL;

	return !why || (e && (strstr(e, "executable file not found") ||
			      strstr(e, "no such file or directory")));
}

int sp_python_not_found(const struct sp_stage *st, const char *image, const char *why,
			const char *python2, struct sp_error *err)
{
	const char *exec_ = why ? strstr(why, "exec: ") : NULL;
	size_t len;

	/* of the runtime's long story, the part that says what went wrong:
	 * `exec: "X": executable file not found in $PATH` */
	if (exec_)
		why = exec_;
	len = why ? strlen(why) : 0;
	if (exec_ && len > 9 && !strcmp(why + len - 9, ": unknown"))
		len -= 9;
	if (st->python)
		return sp_error_set(err, SP_EFAILED, "cannot start python: %s (stage \"%s\") in %s%s%.*s",
				    st->python, st->name, image, why ? ": " : "", (int)len,
				    why ? why : "");
	if (!sp_python_exec_missing(why)) {
		/* the engine's own words, without the request that got them */
		const char *said = strstr(why, "engine answered HTTP ");

		if (said && (said = strstr(said, ": ")))
			why = said + 2;
		return sp_error_set(err, SP_EFAILED, "the test container of stage \"%s\" cannot "
				    "start in %s: %s", st->name, image, why);
	}
	if (python2)
		return sp_error_set(err, SP_EFAILED, "no Python 3 in %s: python is Python %s and "
				    "python3 cannot be started from its PATH; install Python 3 in "
				    "that target, or set python: in stage \"%s\" to the interpreter's "
				    "absolute path", image, python2, st->name);
	return sp_error_set(err, SP_EFAILED, "no Python in %s: neither python nor python3 "
			    "can be started from its PATH; install Python in that target, or set "
			    "python: in stage \"%s\" to the interpreter's absolute path", image,
			    st->name);
}

int sp_python_stopped(const struct sp_python_boot *b, const struct sp_stage *st,
		      const char *image, struct sp_error *err)
{
	const struct sp_python_info *info = &b->info;
	const char *as = info->as ? info->as : st->python ? st->python : "python3";

	if (!st->python && info->version && !strncmp(info->version, "2.", 2))
		return sp_python_not_found(st, image, NULL, info->version, err);
	if (sp_python_check(info, st, as, image, err) < 0)
		return SP_EFAILED;
	return sp_error_set(err, SP_EFAILED, "the interpreter check in %s stopped the tests "
			    "without saying why", image);
}

char *sp_python_describe(const struct sp_python_info *info, const struct sp_stage *st,
			 const char *candidate)
{
	struct sp_buf b = SP_BUF_INIT;

	if (info->as)
		candidate = info->as;
	(void)sp_buf_addf(&b, "python: ");
	if (!info->seen) {
		(void)sp_buf_addf(&b, "%s (%s; the probe said nothing about it)", candidate,
				  st->python ? "the stage's python:" : "on the image's PATH");
		return sp_buf_detach(&b, NULL);
	}
	who(&b, info, st, candidate);
	(void)sp_buf_addf(&b, ", pytest %s", info->pytest ? info->pytest : "missing");
	if (info->pytest_cov)
		(void)sp_buf_addf(&b, ", pytest-cov %s", info->pytest_cov);
	return sp_buf_detach(&b, NULL);
}

