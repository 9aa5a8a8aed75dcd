<?xml version="1.0" encoding="UTF-8"?>
<!--
  Renders our RSS 2.0 and Atom 1.0 feeds as a readable Vietnamese HTML page when a browser
  opens them (via the <?xml-stylesheet?> processing instruction the renderers add).

  XSLT 1.0 only, no extension functions and no disable-output-escaping: browsers (Firefox in
  particular) support neither reliably.  Consequences:
  * RSS <description> is HTML by RSS convention, and our renderer writes the plain-text summary
    HTML-escaped (&amp; &lt; &gt; only); the "unescape" template undoes exactly that so the
    summary is shown as text, still escaped once by the XSLT serializer (no live markup).
  * Dates are reformatted with substring(): the renderers always write RFC 822 (RSS) and
    RFC 3339 (Atom) in the same shape; anything else is shown as is.
  Browsers only apply a same-origin stylesheet, so serve it from the feed's own host.
-->
<xsl:stylesheet version="1.0"
                xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:atom="http://www.w3.org/2005/Atom"
                xmlns:dc="http://purl.org/dc/elements/1.1/"
                exclude-result-prefixes="atom dc">

  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:variable name="months" select="'JanFebMarAprMayJunJulAugSepOctNovDec'"/>

  <xsl:template match="/">
    <html lang="vi">
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="robots" content="noindex"/>
        <title>
          <xsl:value-of select="normalize-space(rss/channel/title | atom:feed/atom:title)"/>
          <xsl:text> – nguồn tin</xsl:text>
        </title>
        <style>
          body { margin: 0; background: #f6f6f4; color: #1f2328;
                 font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
          main { max-width: 46rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
          .notice { background: #fff8d6; border: 1px solid #e8d77a; border-radius: 6px;
                    padding: .75rem 1rem; margin-bottom: 1.5rem; }
          .notice code { display: block; margin-top: .4rem; padding: .35rem .5rem; background: #fff;
                         border: 1px solid #ddd; border-radius: 4px; word-break: break-all;
                         user-select: all; font-size: .9rem; }
          .site { margin: 0; color: #6a737d; font-size: .9rem; text-transform: uppercase;
                  letter-spacing: .04em; }
          h1 { margin: .2rem 0 .4rem; font-size: 1.7rem; line-height: 1.25; }
          .desc { margin: 0 0 .5rem; color: #444; }
          .home a, .pager a { color: #0b5cad; }
          ol.items { list-style: none; margin: 1.5rem 0 0; padding: 0; }
          ol.items li { background: #fff; border: 1px solid #e3e3e0; border-radius: 6px;
                        padding: .9rem 1rem; margin-bottom: .8rem; }
          ol.items h2 { margin: 0 0 .25rem; font-size: 1.15rem; line-height: 1.35; }
          ol.items h2 a { color: #111; text-decoration: none; }
          ol.items h2 a:hover { text-decoration: underline; }
          .meta { margin: 0 0 .4rem; color: #6a737d; font-size: .85rem; }
          .summary { margin: 0; }
          .empty { color: #6a737d; font-style: italic; }
          .pager { display: flex; gap: 1rem; margin-top: 1rem; }
        </style>
      </head>
      <body>
        <main>
          <xsl:apply-templates select="rss/channel | atom:feed"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <!-- RSS 2.0 -->

  <xsl:template match="channel">
    <xsl:call-template name="header">
      <xsl:with-param name="site" select="dc:publisher"/>
      <xsl:with-param name="title" select="title"/>
      <xsl:with-param name="description" select="description"/>
      <xsl:with-param name="home" select="link"/>
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
    </xsl:call-template>
    <xsl:choose>
      <xsl:when test="item">
        <ol class="items">
          <xsl:for-each select="item">
            <li>
              <xsl:call-template name="item-heading">
                <xsl:with-param name="title" select="title"/>
                <xsl:with-param name="href" select="link"/>
              </xsl:call-template>
              <p class="meta">
                <xsl:call-template name="rfc822-date">
                  <xsl:with-param name="d" select="normalize-space(pubDate)"/>
                </xsl:call-template>
                <xsl:call-template name="byline">
                  <xsl:with-param name="who" select="dc:creator"/>
                </xsl:call-template>
              </p>
              <xsl:if test="normalize-space(description)">
                <p class="summary">
                  <xsl:call-template name="unescape">
                    <xsl:with-param name="s" select="description"/>
                  </xsl:call-template>
                </p>
              </xsl:if>
            </li>
          </xsl:for-each>
        </ol>
      </xsl:when>
      <xsl:otherwise>
        <p class="empty">Chưa có bài viết nào.</p>
      </xsl:otherwise>
    </xsl:choose>
    <xsl:call-template name="pager">
      <xsl:with-param name="prev" select="atom:link[@rel='previous']/@href"/>
      <xsl:with-param name="next" select="atom:link[@rel='next']/@href"/>
    </xsl:call-template>
  </xsl:template>

  <!-- Atom 1.0 -->

  <xsl:template match="atom:feed">
    <xsl:call-template name="header">
      <xsl:with-param name="site" select="dc:publisher"/>
      <xsl:with-param name="title" select="atom:title"/>
      <xsl:with-param name="description" select="atom:subtitle"/>
      <xsl:with-param name="home"
                      select="atom:link[@rel='alternate' or not(@rel)][1]/@href"/>
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
    </xsl:call-template>
    <xsl:choose>
      <xsl:when test="atom:entry">
        <ol class="items">
          <xsl:for-each select="atom:entry">
            <li>
              <xsl:call-template name="item-heading">
                <xsl:with-param name="title" select="atom:title"/>
                <xsl:with-param name="href"
                                select="atom:link[@rel='alternate' or not(@rel)][1]/@href"/>
              </xsl:call-template>
              <p class="meta">
                <xsl:call-template name="rfc3339-date">
                  <xsl:with-param name="d" select="normalize-space(atom:published | atom:updated[not(../atom:published)])"/>
                </xsl:call-template>
                <xsl:call-template name="byline">
                  <xsl:with-param name="who" select="atom:author/atom:name"/>
                </xsl:call-template>
              </p>
              <xsl:if test="normalize-space(atom:summary)">
                <p class="summary"><xsl:value-of select="atom:summary"/></p>
              </xsl:if>
            </li>
          </xsl:for-each>
        </ol>
      </xsl:when>
      <xsl:otherwise>
        <p class="empty">Chưa có bài viết nào.</p>
      </xsl:otherwise>
    </xsl:choose>
    <xsl:call-template name="pager">
      <xsl:with-param name="prev" select="atom:link[@rel='previous']/@href"/>
      <xsl:with-param name="next" select="atom:link[@rel='next']/@href"/>
    </xsl:call-template>
  </xsl:template>

  <!-- Shared pieces -->

  <xsl:template name="header">
    <xsl:param name="site"/>
    <xsl:param name="title"/>
    <xsl:param name="description"/>
    <xsl:param name="home"/>
    <xsl:param name="self"/>
    <div class="notice">
      <strong>Đây là nguồn tin RSS/Atom: sao chép địa chỉ vào trình đọc tin để theo dõi</strong>
      <xsl:if test="$self">
        <code><xsl:value-of select="$self"/></code>
      </xsl:if>
    </div>
    <xsl:if test="normalize-space($site)">
      <p class="site"><xsl:value-of select="normalize-space($site)"/></p>
    </xsl:if>
    <h1><xsl:value-of select="normalize-space($title)"/></h1>
    <xsl:if test="normalize-space($description)">
      <p class="desc"><xsl:value-of select="normalize-space($description)"/></p>
    </xsl:if>
    <xsl:if test="$home">
      <p class="home"><a href="{$home}">Xem trên trang web →</a></p>
    </xsl:if>
  </xsl:template>

  <xsl:template name="item-heading">
    <xsl:param name="title"/>
    <xsl:param name="href"/>
    <h2>
      <xsl:choose>
        <xsl:when test="$href">
          <a href="{$href}"><xsl:value-of select="normalize-space($title)"/></a>
        </xsl:when>
        <xsl:otherwise><xsl:value-of select="normalize-space($title)"/></xsl:otherwise>
      </xsl:choose>
    </h2>
  </xsl:template>

  <xsl:template name="byline">
    <xsl:param name="who"/>
    <xsl:if test="normalize-space($who)">
      <xsl:text> · Nguồn: </xsl:text>
      <xsl:value-of select="normalize-space($who)"/>
    </xsl:if>
  </xsl:template>

  <xsl:template name="pager">
    <xsl:param name="prev"/>
    <xsl:param name="next"/>
    <xsl:if test="$prev or $next">
      <nav class="pager">
        <xsl:if test="$prev"><a href="{$prev}">← Trang trước</a></xsl:if>
        <xsl:if test="$next"><a href="{$next}">Trang sau →</a></xsl:if>
      </nav>
    </xsl:if>
  </xsl:template>

  <!-- "Wed, 01 May 2024 08:30:00 +0700" -> "08:30 01/05/2024" -->
  <xsl:template name="rfc822-date">
    <xsl:param name="d"/>
    <xsl:variable name="mon" select="substring($d, 9, 3)"/>
    <xsl:choose>
      <xsl:when test="string-length($d) = 31 and contains($months, $mon)">
        <xsl:value-of select="concat(substring($d, 18, 5), ' ', substring($d, 6, 2), '/',
                              format-number(string-length(substring-before($months, $mon)) div 3 + 1, '00'),
                              '/', substring($d, 13, 4))"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$d"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- "2024-05-01T08:30:00+07:00" -> "08:30 01/05/2024" -->
  <xsl:template name="rfc3339-date">
    <xsl:param name="d"/>
    <xsl:choose>
      <xsl:when test="string-length($d) &gt;= 19 and substring($d, 11, 1) = 'T'">
        <xsl:value-of select="concat(substring($d, 12, 5), ' ', substring($d, 9, 2), '/',
                              substring($d, 6, 2), '/', substring($d, 1, 4))"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$d"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Undo the HTML escaping of a plain-text RSS description: &lt; &gt; then &amp; (last, so
       "&amp;lt;" correctly becomes the text "&lt;"). -->
  <xsl:template name="unescape">
    <xsl:param name="s"/>
    <xsl:call-template name="replace">
      <xsl:with-param name="s">
        <xsl:call-template name="replace">
          <xsl:with-param name="s">
            <xsl:call-template name="replace">
              <xsl:with-param name="s" select="$s"/>
              <xsl:with-param name="from" select="'&amp;lt;'"/>
              <xsl:with-param name="to" select="'&lt;'"/>
            </xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="from" select="'&amp;gt;'"/>
          <xsl:with-param name="to" select="'&gt;'"/>
        </xsl:call-template>
      </xsl:with-param>
      <xsl:with-param name="from" select="'&amp;amp;'"/>
      <xsl:with-param name="to" select="'&amp;'"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template name="replace">
    <xsl:param name="s"/>
    <xsl:param name="from"/>
    <xsl:param name="to"/>
    <xsl:choose>
      <xsl:when test="contains($s, $from)">
        <xsl:value-of select="concat(substring-before($s, $from), $to)"/>
        <xsl:call-template name="replace">
          <xsl:with-param name="s" select="substring-after($s, $from)"/>
          <xsl:with-param name="from" select="$from"/>
          <xsl:with-param name="to" select="$to"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$s"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

</xsl:stylesheet>
